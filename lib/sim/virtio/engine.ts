// How the device serves its queues (virtio 1.2 §2.6–§2.8 device side): always asynchronously,
// never inside the register write that notified it. A queue's turn fetches every chain the driver
// made available (a receive queue takes buffers only when the model has data for them), holds them
// in flight, and completes them as the completion mode says — at once, when the test says so, or
// after a delay — writing each used element and sending the used-buffer interrupt the driver asks
// for. The device (device.ts) decides when a queue may be touched at all.

import type { Completion, PciSide, SimStats } from './types.js';
import type { FaultSet, StickyFault } from './faults.js';
import type { HeldRequests } from './held.js';
import type { DeviceModel } from './model.js';
import type { SimQueue } from './queue.js';
import type { Chain } from './ring/chain.js';
import { RuleViolation } from './rules.js';
import { Isr, VIRTIO_MSI_NO_VECTOR } from '../../spec/index.js';

/** What the engine needs from the device. */
export interface EngineHost {
  readonly queues: readonly SimQueue[];
  readonly model: DeviceModel;
  readonly faults: FaultSet;
  readonly held: HeldRequests;
  readonly stats: SimStats;
  readonly pci: PciSide;
  readonly completion: Completion;
  /** RING_PACKED negotiated. */
  readonly packed: boolean;
  /** The device takes new available buffers (running, live). */
  fetching(): boolean;
  /** The device may touch ring memory (live, STOP / SUSPEND not shown). */
  ringAccess(): boolean;
  /** A sticky fault in force (for queue `q`). */
  sticky(kind: StickyFault, q?: number): boolean;
  /** Fault completion-silence on queue `q`. */
  silenced(q: number): boolean;
  raiseIsr(bits: number): void;
  /** Runs work; a broken driver rule or any error puts the device in DEVICE_NEEDS_RESET. */
  guarded(work: () => void): void;
}

export class QueueEngine {
  /** Inside complete(): receive queues a model woke meanwhile, delivered at the end of the batch. */
  private serving = false;
  private readonly woken = new Set<number>();
  /** Fault completion-silence: chains fetched and held back, per queue. */
  private readonly stalled = new Map<number, Chain[]>();
  private readonly scheduled = new Set<number>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly host: EngineHost) {}

  /** Device reset: nothing woken, nothing held back (the queues forget their chains themselves). */
  reset(): void {
    this.cancelTimers();
    this.woken.clear();
    this.stalled.clear();
  }

  /**
   * A model has data for receive queue `q` (net: a frame came back on the cable). While the device
   * is serving requests it delivers in the same turn — the cable has no delay, so a frame is in a
   * receive buffer by the time its transmit is used, when a buffer is there; otherwise soon.
   */
  wake(q: number): void {
    if (this.serving) this.woken.add(q);
    else this.schedule(q);
  }

  /** Completes every request held in flight; returns how many (none once STOP or SUSPEND shows; none of a hung queue). */
  completeNow(): number {
    let n = 0;
    for (const q of this.host.queues) {
      if (this.host.silenced(q.index)) continue;
      this.host.guarded(() => { n += this.complete(q, q.state.inFlight.toArray()); });
    }
    return n;
  }

  /** completion-silence cleared: what it held back, by queue; `serve` false drops them (a drain will complete them). */
  releaseStalled(serve: boolean): void {
    const stalled = [...this.stalled];
    this.stalled.clear();
    if (serve) for (const [q, chains] of stalled) this.host.guarded(() => this.dispatch(this.host.queues[q]!, chains));
  }

  cancelTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  schedule(q: number): void {
    if (this.scheduled.has(q)) return;
    this.scheduled.add(q);
    setImmediate(() => {
      this.scheduled.delete(q);
      this.host.guarded(() => this.process(q));
    });
  }

  private process(q: number): void {
    const queue = this.host.queues[q]!;
    const ring = queue.ring;
    if (!this.host.fetching() || !queue.enabled || !ring || queue.notifySuppressed || !(this.host.model.queueActive?.(q) ?? true)) return;
    this.requireBusMaster(q);
    const restored = this.host.held.take(q);
    if (restored) this.dispatch(queue, restored);
    if (this.host.model.fetchesRequests(q)) {
      const fetched: Chain[] = [];
      for (let chain = ring.fetch(); chain; chain = ring.fetch()) {
        this.claim(queue, chain);
        fetched.push(chain);
        queue.state.inFlight.push(chain);
      }
      ring.publishNotifyWish(true);
      if (fetched.length > 0) this.dispatch(queue, fetched);
    } else if (!this.receive(queue)) {
      ring.publishNotifyWish(true);
    }
  }

  /** virtio 1.2 §3.3.1: an exposed buffer is not made available again while the device holds it. */
  private claim(queue: SimQueue, chain: Chain): void {
    if (!queue.claim(chain.id)) {
      throw new RuleViolation('buffer-in-use', queue.index,
        `${this.host.packed ? 'buffer id' : 'head descriptor'} ${chain.id} was made available again while the device still holds it`);
    }
  }

  /**
   * Fills receive buffers with the data the model has waiting; then maybe interrupts. Returns
   * whether the model left buffers it had taken (too few for what waits): the device then asks
   * to hear of the driver's next posting (wantNextPosting) and has published its wish already.
   */
  receive(queue: SimQueue): boolean {
    const ring = queue.ring;
    if (!this.host.ringAccess() || !queue.enabled || !ring || queue.notifySuppressed || this.host.silenced(queue.index)) return false;
    this.requireBusMaster(queue.index);
    const state = queue.state;
    const taken: { chain: Chain; availIdx: number; availWrap: boolean }[] = [];
    let left = false;
    const filled = this.host.model.receive(queue.index, {
      take: () => {
        const before = { availIdx: state.availIdx, availWrap: state.availWrap };
        const chain = ring.fetch();
        if (chain) {
          this.claim(queue, chain);
          taken.push({ chain, ...before });
        }
        return chain;
      },
      // Fetching only reads ring memory, so moving the position back undoes it.
      putBack: (count) => {
        if (count <= 0) return;
        left = true;
        const back = taken.splice(taken.length - count, count);
        for (const t of back) queue.release(t.chain.id);
        state.availIdx = back[0]!.availIdx;
        state.availWrap = back[0]!.availWrap;
      },
    });
    if (filled.length === 0) {
      if (left) this.wantNextPosting(queue, ring);
      return left;
    }
    if (this.host.faults.any) {
      const fault = this.host.faults.takeReply(queue.index, (f) => this.host.model.supportsReplyFault?.(queue.index, f) ?? false);
      if (fault) this.host.model.receiveFault?.(queue.index, fault, filled[0]!);
    }
    for (const { chain, written } of filled) this.writeUsed(queue, chain, written);
    // Buffers were taken from the ring: move avail_event along with them (§2.7.10), or the driver's
    // next posting would look "already announced" and never notify a device that has data waiting.
    if (left) this.wantNextPosting(queue, ring);
    else ring.publishNotifyWish(true);
    this.interruptIfWanted(queue);
    return left;
  }

  /**
   * After buffers were left: notify me at the driver's next posting — split: avail_event at
   * avail->idx (§2.7.10); packed: DESC with off_wrap at the driver's next descriptor and its wrap
   * counter (§2.8.10, §2.8.14) — and look again at once if it posted while the wish was being
   * written (it may have read the old wish and not notified).
   */
  private wantNextPosting(queue: SimQueue, ring: NonNullable<SimQueue['ring']>): void {
    const mark = ring.driverMark();
    ring.publishNotifyWish(true, true);
    if (ring.driverMark() !== mark) this.schedule(queue.index);
  }

  dispatch(queue: SimQueue, chains: Chain[]): void {
    if (this.host.faults.any && this.host.silenced(queue.index)) {
      // completion-silence: held back until clearFaults().
      const stalled = this.stalled.get(queue.index) ?? [];
      stalled.push(...chains);
      this.stalled.set(queue.index, stalled);
      return;
    }
    const completion = this.host.completion;
    if (completion === 'manual') return;
    if (completion === 'immediate') {
      this.complete(queue, chains);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.host.guarded(() => this.complete(queue, chains));
    }, completion.latencyMs);
    this.timers.add(timer);
  }

  /** Serves and returns those of `chains` still in flight (a reset forgets them); then maybe interrupts. */
  private complete(queue: SimQueue, chains: Chain[]): number {
    if (!this.host.ringAccess() || !queue.ring) return 0;
    this.requireBusMaster(queue.index);
    let n = 0;
    this.serving = true;
    try {
      for (const chain of chains) {
        // Off the list before it is served (serve() may re-enter the device); a reset meanwhile forgot it.
        if (!queue.state.inFlight.remove(chain)) continue;
        const fault = this.host.faults.any
          ? this.host.faults.takeReply(queue.index, (f) => this.host.model.supportsReplyFault?.(queue.index, f) ?? false)
          : undefined;
        this.writeUsed(queue, chain, this.host.model.serve(queue.index, chain, fault));
        this.host.stats.completed[queue.index]!++;
        n++;
      }
    } finally {
      this.serving = false;
    }
    if (n > 0) this.interruptIfWanted(queue);
    // Set.prototype.clear allocates a new table in V8: only when a model woke something (net).
    if (this.woken.size === 0) return n;
    const woken = [...this.woken];
    this.woken.clear();
    // A model may also wake a request queue (net: pairs enabled by VQ_PAIRS_SET): process it soon.
    for (const q of woken) {
      if (this.host.model.fetchesRequests(q)) this.schedule(q);
      else this.receive(this.host.queues[q]!);
    }
    return n;
  }

  private writeUsed(queue: SimQueue, chain: Chain, written: number): void {
    const ring = queue.ring!;
    const fault = this.host.faults.any ? this.host.faults.takeUsed(queue.index, (f) => ring.supports(f)) : undefined;
    queue.release(chain.id);
    ring.markUsed(chain, written, fault);
  }

  private interruptIfWanted(queue: SimQueue): void {
    if (!queue.ring!.needsInterrupt()) return;
    if (this.host.faults.any && this.host.sticky('interrupt-silence', queue.index)) return;
    if (this.host.pci.msixActive()) {
      // §4.1.5.3.1: a queue mapped to NO_VECTOR gets no interrupt.
      if (queue.msixVector === VIRTIO_MSI_NO_VECTOR) return;
      this.host.pci.signal(queue.msixVector);
    } else {
      this.host.raiseIsr(Isr.QUEUE);
    }
    this.host.stats.interrupts[queue.index]!++;
  }

  requireBusMaster(q: number): void {
    if (!this.host.pci.busMaster()) {
      throw new RuleViolation('bus-master-disabled', q, 'the device must access driver memory but Bus Master Enable is off');
    }
  }
}

// The generic virtio device behind the PCI function: it owns the common configuration, the
// queues and their device-side state, decides when to process a queue (always asynchronously,
// never inside the register write that notified it), holds fetched requests in flight according
// to the completion mode, and sends interrupts. Device types plug in as a DeviceModel.
//
// A driver that breaks the rules (bad addresses, looping chains, malformed requests) puts the
// device into DEVICE_NEEDS_RESET with a config interrupt (virtio 1.2 §2.1.2); nothing is thrown
// out of the event loop.
//
// Quiet states (SPEC-NOTES §1, §2): on STOP (proposal, RING_STATE) or SUSPEND (virtio 1.4 §2.1) the
// device stops fetching at once; it then finishes what it fetched — always for SUSPEND, in 'drain'
// mode for STOP, while 'hold' mode keeps those requests for the DEVICE_STATE mailbox — and shows
// the bit one setImmediate later, after its used elements and interrupts. From then on it reads and
// writes no ring memory and sends no interrupt until a reset (STOP) or a resume (SUSPEND).

import type { GuestMemory } from '../mem/dma.js';
import { Feature, Isr, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../virtio/constants.js';
import { DeviceError, UsageError, VirtqueueError } from '../virtio/errors.js';
import { CommonConfig, type CommonConfigHost, type QuietPhase } from './common-cfg.js';
import { decodeDeviceState, encodeDeviceState, heldRequest, type HeldRequest } from './device-state.js';
import type { DeviceModel, ModelHost } from './model.js';
import { PackedDeviceRing } from './packed-ring.js';
import { SimQueue } from './queue.js';
import { outstanding, stateProblem } from './queue-state.js';
import { addSegment, emptyChain, type Chain, type RingFeatures, type UsedFault } from './ring.js';
import { SplitDeviceRing } from './split-ring.js';
import { StateMailbox, type MailboxHost } from './state-mailbox.js';

/** When fetched requests are completed: at once, when the test says so, or after a delay. */
export type Completion = 'immediate' | 'manual' | { latencyMs: number };

/**
 * What STOP does with requests fetched and not yet completed: complete them before showing STOP
 * ('drain'), or keep them, unfinished, for DEVICE_STATE SAVE ('hold'). SUSPEND always drains.
 */
export type StopMode = 'drain' | 'hold';

export interface SimFault {
  kind: UsedFault;
  /** Only this queue's next used element; any queue's when omitted. */
  queue?: number;
}

export interface SimStats {
  /** Available-buffer notifications received, per queue. */
  notifications: number[];
  /** Used-buffer notifications sent (MSI-X message or ISR bit), per queue. */
  interrupts: number[];
  /** Used elements written for requests, per queue. */
  completed: number[];
  configInterrupts: number;
}

/** How the device reaches the PCI side: interrupts and the command register. */
export interface PciSide {
  /** MSI-X is enabled: interrupts are vectors and the ISR queue bit is not used (§4.1.4.5). */
  msixActive(): boolean;
  signal(vector: number): void;
  /** Bus Master Enable: without it the device cannot touch driver memory. */
  busMaster(): boolean;
}

export interface SimVirtioDeviceOptions {
  model: DeviceModel;
  mem: GuestMemory;
  queueMaxSize: number;
  /** Transport feature bits offered (24–63); VERSION_1 is always added. */
  transportFeatures: bigint;
  completion: Completion;
  stopMode: StopMode;
  msixTableSize: number;
  /** Bytes of common configuration the capability exposes (decides which registers exist). */
  commonLength: number;
  pci: PciSide;
}

const FAULT_KINDS: readonly UsedFault[] = ['bad-used-id', 'used-len-overflow', 'used-index-jump', 'bad-packed-flags'];

export class SimVirtioDevice implements CommonConfigHost, ModelHost, MailboxHost {
  readonly common: CommonConfig;
  readonly queues: SimQueue[];
  readonly offeredFeatures: bigint;
  readonly msixTableSize: number;
  readonly commonLength: number;
  readonly mem: GuestMemory;
  readonly stats: SimStats;
  readonly mailbox: StateMailbox;
  /** Why the device set DEVICE_NEEDS_RESET, until the next reset. */
  failure: Error | undefined;
  phase: QuietPhase = 'running';
  private readonly model: DeviceModel;
  private readonly completion: Completion;
  private readonly stopMode: StopMode;
  private readonly pci: PciSide;
  /** Held requests taken in by LOAD, served after DRIVER_OK; cleared by reset. */
  private loaded: HeldRequest[] | undefined;
  /** Restored chains per queue, waiting for the queue's first processing after DRIVER_OK. */
  private readonly restored = new Map<number, Chain[]>();
  /** Bumped on reset, so quiesce steps scheduled before it do nothing after it. */
  private epoch = 0;
  /** Inside complete(): receive queues a model woke meanwhile, delivered at the end of the batch. */
  private serving = false;
  private readonly woken = new Set<number>();
  private ringFeatures: RingFeatures = { indirect: false, eventIdx: false };
  private packed = false;
  private isr = 0;
  private generation = 0;
  private configDirty = false;
  private readonly faults: SimFault[] = [];
  private readonly scheduled = new Set<number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(options: SimVirtioDeviceOptions) {
    this.model = options.model;
    this.mem = options.mem;
    this.completion = options.completion;
    this.stopMode = options.stopMode;
    this.pci = options.pci;
    this.msixTableSize = options.msixTableSize;
    this.commonLength = options.commonLength;
    this.mailbox = new StateMailbox(this);
    this.offeredFeatures = options.model.features | options.transportFeatures | bit(Feature.VERSION_1);
    this.queues = Array.from({ length: options.model.queueCount }, (_, i) => new SimQueue(i, options.queueMaxSize));
    const perQueue = (): number[] => this.queues.map(() => 0);
    this.stats = { notifications: perQueue(), interrupts: perQueue(), completed: perQueue(), configInterrupts: 0 };
    this.common = new CommonConfig(this);
    this.model.attach(this);
  }

  get configGeneration(): number {
    return this.generation;
  }

  /** Requests fetched and not yet completed, over all queues. */
  get held(): number {
    return this.queues.reduce((n, q) => n + q.state.inFlight.length, 0);
  }

  // ---- register side (called by the BAR window) ----

  /**
   * §4.1.4.4: an available-buffer notification for queue `q`; processed later, not in this write.
   * Counted always; ignored by a device that is not fetching (stopping, stopped, suspended).
   */
  notify(q: number): void {
    if (this.closed || q >= this.queues.length) return;
    this.stats.notifications[q]!++;
    if (this.phase === 'running') this.schedule(q);
  }

  /** §4.1.4.5: reading the ISR returns and clears it. */
  readIsr(): number {
    const v = this.isr;
    this.isr = 0;
    return v;
  }

  /**
   * §4.1.4.3.1 note: a change only bumps config_generation when the driver next reads the
   * device configuration, so the 8-bit counter cannot wrap back unseen.
   */
  readDeviceConfig(offset: number, width: 1 | 2 | 4): number {
    if (this.configDirty) {
      this.generation = (this.generation + 1) & 0xff;
      this.configDirty = false;
    }
    return this.model.config.read(offset, width);
  }

  // ---- CommonConfigHost ----

  /** §2.4: also leaves STOP and SUSPEND, and forgets held requests and a loaded state. */
  reset(): void {
    this.cancelTimers();
    this.epoch++;
    this.phase = 'running';
    this.loaded = undefined;
    this.restored.clear();
    this.woken.clear();
    this.mailbox.reset();
    this.common.reset();
    for (const q of this.queues) q.reset();
    this.isr = 0;
    this.failure = undefined;
    this.ringFeatures = { indirect: false, eventIdx: false };
    this.packed = false;
    this.model.reset();
  }

  featuresAccepted(features: bigint): void {
    this.ringFeatures = { indirect: hasFeature(features, Feature.INDIRECT_DESC), eventIdx: hasFeature(features, Feature.EVENT_IDX) };
    this.packed = hasFeature(features, Feature.RING_PACKED);
    this.model.featuresAccepted?.(features);
  }

  /**
   * DRIVER_OK: check the state the driver wrote (the proposal) and take in the held requests a
   * LOAD brought; an impossible state or one the held requests do not account for sets
   * DEVICE_NEEDS_RESET. Then look at every enabled queue.
   */
  driverOk(): void {
    this.guarded(() => this.restoreHeld());
    if (!this.live()) return;
    for (const q of this.queues) if (q.enabled) this.schedule(q.index);
  }

  quiesce(kind: 'stop' | 'suspend'): void {
    this.phase = kind === 'stop' ? 'stopping' : 'suspending';
    // Completion timers would finish held requests behind the device's back; drain finishes them itself.
    this.cancelTimers();
    const epoch = this.epoch;
    setImmediate(() => {
      if (epoch !== this.epoch || this.closed) return;
      if (kind === 'suspend' || this.stopMode === 'drain') this.completeNow();
      // Data the device already has for the driver (net: frames on the cable) goes into receive
      // buffers already available, in either mode: it is finished work, not a fetched request.
      for (const q of this.queues) if (!this.model.fetchesRequests(q.index)) this.guarded(() => this.receive(q));
      // Shown one turn later: the used-buffer interrupts (microtasks) have been delivered by then.
      setImmediate(() => {
        if (epoch !== this.epoch || this.closed) return;
        if (kind === 'stop') {
          this.phase = 'stopped';
          this.common.status |= Status.STOP;
        } else {
          this.phase = 'suspended';
          this.common.status = (this.common.status & ~Status.DRIVER_OK) | Status.SUSPEND;
        }
      });
    });
  }

  /** virtio 1.4 §2.1: SUSPEND cleared, DRIVER_OK set again; re-check every queue for buffers made available meanwhile. */
  resume(): void {
    this.phase = 'running';
    for (const q of this.queues) if (q.enabled) this.schedule(q.index);
  }

  // ---- MailboxHost (DEVICE_STATE, state-mailbox.ts) ----

  savableState(): Uint8Array | undefined {
    if (this.phase !== 'stopped') return undefined;
    const held = this.queues.flatMap((q) => q.state.inFlight.map((chain) => heldRequest(q.index, chain)));
    // Nothing held, no extra state: DEVICE_STATE_LEN reads 0 and the driver has nothing to carry.
    return held.length === 0 ? new Uint8Array(0) : encodeDeviceState(held);
  }

  loadAllowed(): boolean {
    const s = this.common.status;
    return this.phase === 'running' && (s & Status.FEATURES_OK) !== 0 && (s & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === 0;
  }

  writeGuest(addr: bigint, bytes: Uint8Array): void {
    this.requireBusMaster(0);
    this.mem.view(addr, bytes.length).set(bytes);
  }

  readGuest(addr: bigint, len: number): Uint8Array {
    this.requireBusMaster(0);
    return this.mem.view(addr, len).slice();
  }

  /** Format checks here; the checks against the queues' state wait for DRIVER_OK (restoreHeld). */
  load(bytes: Uint8Array): void {
    const held = decodeDeviceState(bytes, { queueCount: this.queues.length, queueMaxSize: this.queues[0]?.maxSize ?? 0 });
    for (const r of held) {
      if (!this.model.fetchesRequests(r.queue)) throw new Error(`device state: queue ${r.queue} never holds requests`);
      this.toChain(r);
    }
    this.loaded = held;
  }

  /** Builds the ring over driver memory; addresses it does not own put the device in NEEDS_RESET. */
  enableQueue(queue: SimQueue): void {
    this.guarded(() => {
      queue.ring = this.packed
        ? new PackedDeviceRing(queue, this.mem, this.ringFeatures)
        : new SplitDeviceRing(queue, this.mem, this.ringFeatures);
      queue.enabled = true;
    });
  }

  // ---- ModelHost ----

  /**
   * A model has data for receive queue `q` (net: a frame came back on the cable). While the device
   * is serving requests it delivers in the same turn — the cable has no delay, so a frame is in a
   * receive buffer by the time its transmit is used, when a buffer is there; otherwise soon.
   */
  wake(q: number): void {
    if (this.serving) this.woken.add(q);
    else this.schedule(q);
  }

  configChanged(): void {
    this.configDirty = true;
    this.sendConfigInterrupt();
  }

  // ---- test and CLI controls ----

  /** Completes every request held in flight; returns how many (none once STOP or SUSPEND shows). */
  completeNow(): number {
    let n = 0;
    for (const q of this.queues) this.guarded(() => { n += this.complete(q, [...q.state.inFlight]); });
    return n;
  }

  injectFault(fault: SimFault): void {
    if (!FAULT_KINDS.includes(fault.kind)) {
      throw new UsageError('E_INVALID_ARGUMENT', `unknown fault ${String(fault.kind)}`, `use one of ${FAULT_KINDS.join(', ')}`);
    }
    this.faults.push({ ...fault });
  }

  /**
   * Asks the driver not to notify queue `q` (as a polling device would) or to notify again.
   * Turning notifications back on re-checks the ring, so nothing made available meanwhile is missed.
   */
  suppressNotifications(q: number, suppressed: boolean): void {
    const queue = this.queues[q];
    if (!queue) throw new UsageError('E_INVALID_ARGUMENT', `the device has no queue ${q}`);
    queue.notifySuppressed = suppressed;
    const ring = queue.ring;
    if (!ring || !this.fetching()) return;
    this.guarded(() => {
      this.requireBusMaster(q);
      ring.publishNotifyWish(!suppressed);
    });
    if (!suppressed) this.schedule(q);
  }

  close(): void {
    this.closed = true;
    this.cancelTimers();
  }

  // ---- restoring held requests (DEVICE_STATE LOAD, then DRIVER_OK) ----

  /**
   * Every enabled queue's state must be possible for its layout, and the requests between its used
   * and available positions must be exactly the held ones loaded for it (when DEVICE_STATE was
   * negotiated: without a LOAD, none). Each is then in flight again, to be served once.
   */
  private restoreHeld(): void {
    const packed = this.packed;
    const loaded = this.loaded ?? [];
    this.loaded = undefined;
    for (const r of loaded) {
      const queue = this.queues[r.queue]!;
      if (!queue.enabled) throw new DeviceError('E_STATE_REFUSED', `device state: held request ${r.id} is for queue ${r.queue}, which is not enabled`);
      if (r.id >= queue.size) throw new DeviceError('E_STATE_REFUSED', `device state: held request id ${r.id} is beyond queue ${r.queue}'s size ${queue.size}`);
    }
    for (const queue of this.queues) {
      if (!queue.enabled) continue;
      const problem = stateProblem(queue, packed);
      if (problem) throw new DeviceError('E_STATE_REFUSED', problem);
      if (!this.common.has(Feature.DEVICE_STATE)) continue;
      const mine = loaded.filter((r) => r.queue === queue.index);
      const accounted = mine.reduce((n, r) => n + (packed ? r.ringDescs : 1), 0);
      const gap = outstanding(queue, packed)!;
      if (accounted !== gap) {
        throw new DeviceError('E_STATE_REFUSED',
          `queue ${queue.index}: ${gap} ${packed ? 'descriptor slots' : 'requests'} lie between the used and available state, but the device state holds ${accounted}`);
      }
      const chains = mine.map((r) => this.toChain(r));
      queue.state.inFlight.push(...chains);
      if (chains.length > 0) this.restored.set(queue.index, chains);
    }
  }

  /** A held request as the chain the ring would have given (checks its memory like a fetch does). */
  private toChain(r: HeldRequest): Chain {
    const chain = emptyChain(r.id);
    chain.ringDescs = r.ringDescs;
    for (const s of r.segments) addSegment(chain, r.queue, this.mem, s.addr, s.len, s.writable);
    return chain;
  }

  // ---- processing ----

  private live(): boolean {
    const s = this.common.status;
    return !this.closed && (s & Status.DRIVER_OK) !== 0 && (s & (Status.DEVICE_NEEDS_RESET | Status.FAILED)) === 0;
  }

  /** The device takes new available buffers only while running. */
  private fetching(): boolean {
    return this.live() && this.phase === 'running';
  }

  /** Ring memory is touched while running or quietening, never once STOP or SUSPEND shows. */
  private ringAccess(): boolean {
    return this.live() && this.phase !== 'stopped' && this.phase !== 'suspended';
  }

  private cancelTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(q: number): void {
    if (this.scheduled.has(q)) return;
    this.scheduled.add(q);
    setImmediate(() => {
      this.scheduled.delete(q);
      this.guarded(() => this.process(q));
    });
  }

  private process(q: number): void {
    const queue = this.queues[q]!;
    const ring = queue.ring;
    if (!this.fetching() || !queue.enabled || !ring || queue.notifySuppressed || !(this.model.queueActive?.(q) ?? true)) return;
    this.requireBusMaster(q);
    const restored = this.restored.get(q);
    if (restored) {
      this.restored.delete(q);
      this.dispatch(queue, restored);
    }
    if (this.model.fetchesRequests(q)) {
      const fetched: Chain[] = [];
      for (let chain = ring.fetch(); chain; chain = ring.fetch()) {
        fetched.push(chain);
        queue.state.inFlight.push(chain);
      }
      ring.publishNotifyWish(true);
      if (fetched.length > 0) this.dispatch(queue, fetched);
    } else {
      this.receive(queue);
      ring.publishNotifyWish(true);
    }
  }

  /** Fills receive buffers with the data the model has waiting; then maybe interrupts. */
  private receive(queue: SimQueue): void {
    const ring = queue.ring;
    if (!this.ringAccess() || !queue.enabled || !ring || queue.notifySuppressed) return;
    this.requireBusMaster(queue.index);
    const state = queue.state;
    const taken: { availIdx: number; availWrap: boolean }[] = [];
    const filled = this.model.receive(queue.index, {
      take: () => {
        const before = { availIdx: state.availIdx, availWrap: state.availWrap };
        const chain = ring.fetch();
        if (chain) taken.push(before);
        return chain;
      },
      // Fetching only reads ring memory, so moving the position back undoes it.
      putBack: (count) => {
        if (count <= 0) return;
        const at = taken.splice(taken.length - count, count)[0]!;
        state.availIdx = at.availIdx;
        state.availWrap = at.availWrap;
      },
    });
    for (const { chain, written } of filled) this.writeUsed(queue, chain, written);
    // Buffers were taken from the ring: move avail_event along with them (§2.7.10), or the driver's
    // next posting would look "already announced" and never notify a device that has data waiting.
    if (filled.length > 0) ring.publishNotifyWish(true);
    if (filled.length > 0) this.interruptIfWanted(queue);
  }

  private dispatch(queue: SimQueue, chains: Chain[]): void {
    const completion = this.completion;
    if (completion === 'manual') return;
    if (completion === 'immediate') {
      this.complete(queue, chains);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.guarded(() => this.complete(queue, chains));
    }, completion.latencyMs);
    this.timers.add(timer);
  }

  /** Serves and returns those of `chains` still in flight (a reset forgets them); then maybe interrupts. */
  private complete(queue: SimQueue, chains: Chain[]): number {
    if (!this.ringAccess() || !queue.ring) return 0;
    this.requireBusMaster(queue.index);
    let n = 0;
    this.serving = true;
    try {
      for (const chain of chains) {
        const at = queue.state.inFlight.indexOf(chain);
        if (at < 0) continue;
        queue.state.inFlight.splice(at, 1);
        this.writeUsed(queue, chain, this.model.serve(queue.index, chain));
        this.stats.completed[queue.index]!++;
        n++;
      }
    } finally {
      this.serving = false;
    }
    if (n > 0) this.interruptIfWanted(queue);
    const woken = [...this.woken];
    this.woken.clear();
    // A model may also wake a request queue (net: pairs enabled by VQ_PAIRS_SET): process it soon.
    for (const q of woken) {
      if (this.model.fetchesRequests(q)) this.schedule(q);
      else this.receive(this.queues[q]!);
    }
    return n;
  }

  private writeUsed(queue: SimQueue, chain: Chain, written: number): void {
    const ring = queue.ring!;
    const at = this.faults.findIndex((f) => (f.queue === undefined || f.queue === queue.index) && ring.supports(f.kind));
    const fault = at < 0 ? undefined : this.faults.splice(at, 1)[0]!.kind;
    ring.markUsed(chain, written, fault);
  }

  private interruptIfWanted(queue: SimQueue): void {
    if (!queue.ring!.needsInterrupt()) return;
    if (this.pci.msixActive()) {
      // §4.1.5.1.2: a queue mapped to NO_VECTOR gets no interrupt.
      if (queue.msixVector === VIRTIO_MSI_NO_VECTOR) return;
      this.pci.signal(queue.msixVector);
    } else {
      this.isr |= Isr.QUEUE;
    }
    this.stats.interrupts[queue.index]!++;
  }

  /** §4.1.4.5 / §4.1.5.4: the ISR config bit is always set; the config vector is used with MSI-X. */
  private sendConfigInterrupt(): void {
    if (this.closed || !(this.common.status & Status.DRIVER_OK) || this.phase === 'stopped') return;
    this.isr |= Isr.CONFIG;
    this.stats.configInterrupts++;
    const vector = this.common.configMsixVector;
    if (this.pci.msixActive() && vector !== VIRTIO_MSI_NO_VECTOR) this.pci.signal(vector);
  }

  private requireBusMaster(q: number): void {
    if (!this.pci.busMaster()) {
      throw new VirtqueueError('E_BAD_STATE', q, 'the device must access driver memory but Bus Master Enable is off',
        'set bit 2 of the PCI command register (lib/pci/config.ts enableBusMaster)');
    }
  }

  /** §2.1.2: on a driver error the device sets DEVICE_NEEDS_RESET and, once live, sends a config interrupt. */
  private fail(error: Error): void {
    if (this.common.status & Status.DEVICE_NEEDS_RESET) return;
    this.failure = error;
    this.common.status |= Status.DEVICE_NEEDS_RESET;
    this.sendConfigInterrupt();
  }

  private guarded(work: () => void): void {
    try {
      work();
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

// The generic virtio device behind the PCI function: it owns the common configuration, the
// queues and their device-side state, decides when to process a queue (always asynchronously,
// never inside the register write that notified it), holds fetched requests in flight according
// to the completion mode, and sends interrupts. Device types plug in as a DeviceModel.
//
// A driver that breaks the rules (bad addresses, looping chains, malformed requests) puts the
// device into DEVICE_NEEDS_RESET with a config interrupt (virtio 1.2 §2.1.2); nothing is thrown
// out of the event loop.

import type { GuestMemory } from '../mem/dma.js';
import { Feature, Isr, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../virtio/constants.js';
import { UsageError, VirtqueueError } from '../virtio/errors.js';
import { CommonConfig, type CommonConfigHost } from './common-cfg.js';
import type { DeviceModel, ModelHost } from './model.js';
import { PackedDeviceRing } from './packed-ring.js';
import { SimQueue } from './queue.js';
import type { Chain, RingFeatures, UsedFault } from './ring.js';
import { SplitDeviceRing } from './split-ring.js';

/** When fetched requests are completed: at once, when the test says so, or after a delay. */
export type Completion = 'immediate' | 'manual' | { latencyMs: number };

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
  msixTableSize: number;
  pci: PciSide;
}

const FAULT_KINDS: readonly UsedFault[] = ['bad-used-id', 'used-len-overflow', 'used-index-jump', 'bad-packed-flags'];

export class SimVirtioDevice implements CommonConfigHost, ModelHost {
  readonly common: CommonConfig;
  readonly queues: SimQueue[];
  readonly offeredFeatures: bigint;
  readonly msixTableSize: number;
  readonly mem: GuestMemory;
  readonly stats: SimStats;
  /** Why the device set DEVICE_NEEDS_RESET, until the next reset. */
  failure: Error | undefined;
  private readonly model: DeviceModel;
  private readonly completion: Completion;
  private readonly pci: PciSide;
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
    this.pci = options.pci;
    this.msixTableSize = options.msixTableSize;
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

  /** §4.1.4.4: an available-buffer notification for queue `q`; processed later, not in this write. */
  notify(q: number): void {
    if (this.closed || q >= this.queues.length) return;
    this.stats.notifications[q]!++;
    this.schedule(q);
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

  reset(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
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
  }

  driverOk(): void {
    for (const q of this.queues) if (q.enabled) this.schedule(q.index);
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

  wake(q: number): void {
    this.schedule(q);
  }

  configChanged(): void {
    this.configDirty = true;
    this.sendConfigInterrupt();
  }

  // ---- test and CLI controls ----

  /** Completes every request held in flight; returns how many. */
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
    if (!ring || !this.live()) return;
    this.guarded(() => {
      this.requireBusMaster(q);
      ring.publishNotifyWish(!suppressed);
    });
    if (!suppressed) this.schedule(q);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // ---- processing ----

  private live(): boolean {
    const s = this.common.status;
    return !this.closed && (s & Status.DRIVER_OK) !== 0 && (s & (Status.DEVICE_NEEDS_RESET | Status.FAILED)) === 0;
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
    if (!this.live() || !queue.enabled || !ring || queue.notifySuppressed) return;
    this.requireBusMaster(q);
    if (this.model.fetchesRequests(q)) {
      const fetched: Chain[] = [];
      for (let chain = ring.fetch(); chain; chain = ring.fetch()) {
        fetched.push(chain);
        queue.state.inFlight.push(chain);
      }
      ring.publishNotifyWish(true);
      if (fetched.length > 0) this.dispatch(queue, fetched);
    } else {
      const filled = this.model.receive(q, () => ring.fetch());
      for (const { chain, written } of filled) this.writeUsed(queue, chain, written);
      ring.publishNotifyWish(true);
      if (filled.length > 0) this.interruptIfWanted(queue);
    }
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
    if (!this.live() || !queue.ring) return 0;
    this.requireBusMaster(queue.index);
    let n = 0;
    for (const chain of chains) {
      const at = queue.state.inFlight.indexOf(chain);
      if (at < 0) continue;
      queue.state.inFlight.splice(at, 1);
      this.writeUsed(queue, chain, this.model.serve(queue.index, chain));
      this.stats.completed[queue.index]!++;
      n++;
    }
    if (n > 0) this.interruptIfWanted(queue);
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
    if (this.closed || !(this.common.status & Status.DRIVER_OK)) return;
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

// The generic virtio device behind the PCI function: it owns the common configuration, the
// queues and their device-side state, the status machine's consequences (reset, DRIVER_OK, STOP,
// SUSPEND) and the interrupts; engine.ts serves the queues (always asynchronously, never inside
// the register write that notified it). Device types plug in as a DeviceModel.
//
// A strict device: every driver access the spec forbids is recorded in `violations` (rules.ts);
// the ones that leave the rings or the state untrustworthy put the device into
// DEVICE_NEEDS_RESET with a config interrupt (virtio 1.2 §2.1.2). Nothing is thrown out of the
// event loop. On demand it also misbehaves itself (faults.ts).
//
// Quiet states (SPEC-NOTES §1, §2): on STOP (proposal, RING_STATE) or SUSPEND (virtio 1.4 §3.4) the
// device stops fetching at once; it then finishes what it fetched — always for SUSPEND, in 'drain'
// mode for STOP, while 'hold' mode keeps those requests for the DEVICE_STATE mailbox — and shows
// the bit one setImmediate later, after its used elements and interrupts. From then on it reads and
// writes no ring memory and sends no interrupt until a reset (STOP) or a resume (SUSPEND).

import type { GuestMemory } from '../mem/dma.js';
import { Feature, Isr, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../spec/index.js';
import { DeviceError, UsageError } from '../errors.js';
import { CommonConfig, type CommonConfigHost, type QuietPhase } from './common-cfg.js';
import { QueueEngine, type EngineHost } from './engine.js';
import { FaultSet, checkFault, isImmediate, type SimFault, type StickyFault } from './faults.js';
import { HeldRequests, type HeldHost } from './held.js';
import type { DeviceModel, ModelHost } from './model.js';
import { PackedDeviceRing } from './packed-ring.js';
import { SimQueue } from './queue.js';
import type { RingContext } from './ring.js';
import { RuleViolation, ViolationLog, type RuleId } from './rules.js';
import { SplitDeviceRing } from './split-ring.js';
import { StateMailbox, type MailboxHost } from './state-mailbox.js';

/** When fetched requests are completed: at once, when the test says so, or after a delay. */
export type Completion = 'immediate' | 'manual' | { latencyMs: number };

/**
 * What STOP does with requests fetched and not yet completed: complete them before showing STOP
 * ('drain'), or keep them, unfinished, for DEVICE_STATE SAVE ('hold'). SUSPEND always drains.
 */
export type StopMode = 'drain' | 'hold';

export interface SimStats {
  /** Available-buffer notifications received, per queue. */
  notifications: number[];
  /** Used-buffer notifications sent (MSI-X message or ISR bit), per queue. */
  interrupts: number[];
  /** Used elements written for requests, per queue. */
  completed: number[];
  configInterrupts: number;
  /** Interrupts sent for nothing (fault interrupt-storm). */
  spuriousInterrupts: number;
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

export class SimVirtioDevice implements CommonConfigHost, ModelHost, MailboxHost, HeldHost, EngineHost {
  readonly common: CommonConfig;
  readonly queues: SimQueue[];
  readonly offeredFeatures: bigint;
  readonly msixTableSize: number;
  readonly commonLength: number;
  readonly mem: GuestMemory;
  readonly stats: SimStats;
  readonly mailbox: StateMailbox;
  /** Every driver rule broken since the device was made (rules.ts). */
  readonly violations = new ViolationLog();
  /** Why the device set DEVICE_NEEDS_RESET, until the next reset. */
  failure: Error | undefined;
  phase: QuietPhase = 'running';
  readonly model: DeviceModel;
  readonly completion: Completion;
  readonly pci: PciSide;
  readonly held: HeldRequests;
  readonly faults = new FaultSet();
  private readonly engine: QueueEngine;
  private readonly stopMode: StopMode;
  /** Bumped on reset, so quiesce steps scheduled before it do nothing after it. */
  private epoch = 0;
  private ringFeatures = { indirect: false, eventIdx: false };
  private isr = 0;
  private generation = 0;
  private configDirty = false;
  /** Fault reset-stuck: a reset was written and never completes (until clearFaults). */
  private stuckReset = false;
  /** A STOP or SUSPEND that cannot finish yet (stop-stuck, or draining a hung queue). */
  private quietPending: 'stop' | 'suspend' | undefined;
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
    this.held = new HeldRequests(this);
    this.engine = new QueueEngine(this);
    this.offeredFeatures = options.model.features | options.transportFeatures | bit(Feature.VERSION_1);
    this.queues = Array.from({ length: options.model.queueCount }, (_, i) => new SimQueue(i, options.queueMaxSize));
    const perQueue = (): number[] => this.queues.map(() => 0);
    this.stats = { notifications: perQueue(), interrupts: perQueue(), completed: perQueue(), configInterrupts: 0, spuriousInterrupts: 0 };
    this.common = new CommonConfig(this);
    this.model.attach(this);
  }

  /** Requests fetched and not yet completed, over all queues. */
  get heldCount(): number {
    return this.queues.reduce((n, q) => n + q.state.inFlight.length, 0);
  }

  get packed(): boolean {
    return this.common.has(Feature.RING_PACKED);
  }

  get deviceStateNegotiated(): boolean {
    return this.common.has(Feature.DEVICE_STATE);
  }

  get resetStuck(): boolean {
    return this.stuckReset;
  }

  // ---- register side (called by the BAR window) ----

  /**
   * §4.1.5.2: an available-buffer notification for queue `q`; processed later, not in this write.
   * Counted always; ignored by a device that is not fetching (stopping, stopped, suspended).
   */
  notify(q: number): void {
    if (this.closed || q >= this.queues.length) return;
    this.stats.notifications[q]!++;
    if (this.phase === 'suspending' || this.phase === 'suspended') {
      this.violation('notify-while-suspended', `notification for queue ${q} after SUSPEND was set`, q);
    } else if (!(this.common.status & Status.DRIVER_OK)) {
      this.violation('notify-before-driver-ok', `notification for queue ${q} before DRIVER_OK`, q);
    }
    if (this.phase === 'running') this.engine.schedule(q);
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
    return this.model.config.access(offset, width, this.offeredFeatures, (rule, message) => this.violation(rule, message));
  }

  // ---- CommonConfigHost (and StatusHost) ----

  /** Fault config-churn: a new generation on every read. */
  readConfigGeneration(): number {
    if (this.sticky('config-churn')) this.generation = (this.generation + 1) & 0xff;
    return this.generation;
  }

  /** §2.4: also leaves STOP and SUSPEND, and forgets held requests and a loaded state. */
  reset(): void {
    this.engine.cancelTimers();
    this.epoch++;
    if (this.sticky('reset-stuck')) {
      // The reset never completes: the device goes quiet, device_status keeps its old value.
      this.stuckReset = true;
      return;
    }
    this.phase = 'running';
    this.quietPending = undefined;
    this.engine.reset();
    this.held.reset();
    this.mailbox.reset();
    this.common.reset();
    for (const q of this.queues) q.reset();
    this.isr = 0;
    this.failure = undefined;
    this.ringFeatures = { indirect: false, eventIdx: false };
    this.model.reset();
  }

  /** §2.2.1 / §6.1: a subset of the offer, with VERSION_1 and every feature's prerequisite. */
  featureProblem(features: bigint): { rule: RuleId; message: string } | undefined {
    const extra = features & ~this.offeredFeatures;
    if (extra !== 0n) return { rule: 'feature-not-offered', message: `features 0x${extra.toString(16)} were not offered` };
    if (!hasFeature(features, Feature.VERSION_1)) return { rule: 'version-1-not-accepted', message: 'VIRTIO_F_VERSION_1 was offered and not accepted' };
    const needs: (readonly [number, number])[] = [[Feature.DEVICE_STATE, Feature.RING_STATE], ...(this.model.featureDependencies ?? [])];
    for (const [feature, requires] of needs) {
      if (hasFeature(features, feature) && !hasFeature(features, requires)) {
        return { rule: 'feature-dependency', message: `feature ${feature} accepted without feature ${requires}, which it requires` };
      }
    }
    return undefined;
  }

  featuresRefused(): boolean {
    return this.sticky('features-refuse');
  }

  featuresAccepted(features: bigint): void {
    this.ringFeatures = { indirect: hasFeature(features, Feature.INDIRECT_DESC), eventIdx: hasFeature(features, Feature.EVENT_IDX) };
    this.model.featuresAccepted?.(features);
  }

  /**
   * DRIVER_OK: the register checks (vectors read back, states written), then the state the driver
   * wrote and the held requests a LOAD brought (held.ts; a violation sets DEVICE_NEEDS_RESET). Then
   * look at every enabled queue.
   */
  driverOk(): void {
    this.common.checkBeforeLive();
    this.guarded(() => this.held.restore());
    if (!this.live()) return;
    for (const q of this.queues) if (q.enabled) this.engine.schedule(q.index);
  }

  /** STOP or SUSPEND requested: stop fetching now; finish (or hold), then show the bit (settleQuiet). */
  quiesce(kind: 'stop' | 'suspend'): void {
    this.phase = kind === 'stop' ? 'stopping' : 'suspending';
    // 1.4 §3.4.1: from now on the driver makes no buffer available; remember where it stood.
    if (kind === 'suspend') for (const q of this.queues) q.suspendMark = q.ring?.driverMark();
    // Completion timers would finish held requests behind the device's back; drain finishes them itself.
    this.engine.cancelTimers();
    const epoch = this.epoch;
    setImmediate(() => this.settleQuiet(kind, epoch));
  }

  /** virtio 1.4 §3.4: SUSPEND cleared, DRIVER_OK set again; re-check every queue for buffers made available meanwhile. */
  resume(): void {
    this.phase = 'running';
    for (const q of this.queues) {
      if (q.ring && q.suspendMark !== undefined && q.ring.driverMark() !== q.suspendMark) {
        this.violation('avail-while-suspended', `queue ${q.index}: buffers were made available while the device was suspended`, q.index);
      }
      q.suspendMark = undefined;
      if (q.enabled) this.engine.schedule(q.index);
    }
  }

  /** Builds the ring over driver memory; addresses it does not own put the device in NEEDS_RESET. */
  enableQueue(queue: SimQueue): void {
    this.guarded(() => {
      const ctx: RingContext = { ...this.ringFeatures, report: (rule, message) => this.violation(rule, message, queue.index) };
      queue.ring = this.packed ? new PackedDeviceRing(queue, this.mem, ctx) : new SplitDeviceRing(queue, this.mem, ctx);
      queue.enabled = true;
    });
  }

  stateLie(q: number): number {
    return this.faults.any ? (this.faults.active('state-lie', q)?.count ?? 0) : 0;
  }

  violation(rule: RuleId, message: string, queue?: number): void {
    this.violations.record(rule, message, queue);
  }

  // ---- MailboxHost (DEVICE_STATE, state-mailbox.ts) ----

  savableState(): Uint8Array | undefined {
    return this.phase === 'stopped' ? this.held.save() : undefined;
  }

  loadAllowed(): boolean {
    const s = this.common.status;
    return this.phase === 'running' && (s & Status.FEATURES_OK) !== 0 && (s & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === 0;
  }

  writeGuest(addr: bigint, bytes: Uint8Array): void {
    this.engine.requireBusMaster(0);
    this.mem.view(addr, bytes.length).set(bytes);
  }

  readGuest(addr: bigint, len: number): Uint8Array {
    this.engine.requireBusMaster(0);
    return this.mem.view(addr, len).slice();
  }

  load(bytes: Uint8Array): void {
    this.held.load(bytes);
  }

  injectedRefusal(command: 'save' | 'load'): number | undefined {
    return this.faults.any ? this.faults.refusal(command) : undefined;
  }

  // ---- ModelHost ----

  /** A model has data for receive queue `q` (engine.ts). */
  wake(q: number): void {
    this.engine.wake(q);
  }

  configChanged(): void {
    this.configDirty = true;
    this.sendConfigInterrupt();
  }

  fetchesRequests(q: number): boolean {
    return this.model.fetchesRequests(q);
  }

  // ---- test and CLI controls ----

  /** Completes every request held in flight; returns how many (none once STOP or SUSPEND shows; none of a hung queue). */
  completeNow(): number {
    return this.engine.completeNow();
  }

  /** Misbehaves as faults.ts describes: immediate kinds now, the others from now on. */
  injectFault(fault: SimFault): void {
    const f = checkFault(fault, this.queues.length);
    if (!isImmediate(f.kind)) {
      this.faults.add(f);
      return;
    }
    if (f.kind === 'needs-reset') {
      this.fail(new DeviceError('E_DEVICE_NEEDS_RESET', 'the device needs a reset (injected fault needs-reset)', 'reset the device'));
      return;
    }
    // interrupt-storm: every vector `count` times; without MSI-X, both ISR bits.
    if (this.pci.msixActive()) {
      for (let v = 0; v < this.msixTableSize; v++) for (let i = 0; i < f.count; i++) this.pci.signal(v);
      this.stats.spuriousInterrupts += this.msixTableSize * f.count;
    } else {
      this.isr |= Isr.QUEUE | Isr.CONFIG;
      this.stats.spuriousInterrupts++;
    }
  }

  /** Back to normal: a stuck reset completes, a pending STOP / SUSPEND shows, held-back requests complete. */
  clearFaults(): void {
    this.faults.clear();
    if (this.stuckReset) {
      this.stuckReset = false;
      this.reset();
      return;
    }
    const pending = this.quietPending;
    this.quietPending = undefined;
    // A pending drain completes what completion-silence held back itself; otherwise serve it now.
    this.engine.releaseStalled(!pending);
    if (pending) {
      const epoch = this.epoch;
      setImmediate(() => this.settleQuiet(pending, epoch));
      return;
    }
    for (const q of this.queues) if (q.enabled) this.engine.schedule(q.index);
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
      this.engine.requireBusMaster(q);
      ring.publishNotifyWish(!suppressed);
    });
    if (!suppressed) this.engine.schedule(q);
  }

  close(): void {
    this.closed = true;
    this.engine.cancelTimers();
  }

  // ---- quiet states ----

  /**
   * Drains (SUSPEND, STOP in 'drain' mode) or holds, fills receive buffers with data already on
   * hand, then shows the bit a turn later — unless stop-stuck holds it back, or a hung queue
   * (completion-silence) cannot drain: then it waits for clearFaults().
   */
  private settleQuiet(kind: 'stop' | 'suspend', epoch: number): void {
    if (epoch !== this.epoch || this.closed) return;
    const drains = kind === 'suspend' || this.stopMode === 'drain';
    if (drains) this.completeNow();
    // Data the device already has for the driver (net: frames on the cable) goes into receive
    // buffers already available, in either mode: it is finished work, not a fetched request.
    for (const q of this.queues) if (!this.model.fetchesRequests(q.index)) this.guarded(() => this.engine.receive(q));
    const hung = drains && this.queues.some((q) => q.state.inFlight.length > 0 && this.silenced(q.index));
    if (hung || this.sticky('stop-stuck')) {
      this.quietPending = kind;
      return;
    }
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
  }

  // ---- processing ----

  private live(): boolean {
    const s = this.common.status;
    return !this.closed && !this.stuckReset && (s & Status.DRIVER_OK) !== 0 && (s & (Status.DEVICE_NEEDS_RESET | Status.FAILED)) === 0;
  }

  /** The device takes new available buffers only while running. */
  fetching(): boolean {
    return this.live() && this.phase === 'running';
  }

  /** Ring memory is touched while running or quietening, never once STOP or SUSPEND shows. */
  ringAccess(): boolean {
    return this.live() && this.phase !== 'stopped' && this.phase !== 'suspended';
  }

  sticky(kind: StickyFault, q?: number): boolean {
    return this.faults.any && this.faults.active(kind, q) !== undefined;
  }

  /** Fault completion-silence on queue `q`. */
  silenced(q: number): boolean {
    return this.sticky('completion-silence', q);
  }

  raiseIsr(bits: number): void {
    this.isr |= bits;
  }

  /** §4.1.4.5.1 / §4.1.5.4: the ISR config bit is always set; the config vector is used with MSI-X. */
  private sendConfigInterrupt(): void {
    if (this.closed || this.stuckReset || !(this.common.status & Status.DRIVER_OK) || this.phase === 'stopped') return;
    this.isr |= Isr.CONFIG;
    this.stats.configInterrupts++;
    const vector = this.common.configMsixVector;
    if (this.pci.msixActive() && vector !== VIRTIO_MSI_NO_VECTOR) this.pci.signal(vector);
  }

  /** §2.1.2: on an error the device sets DEVICE_NEEDS_RESET and, once live, sends a config interrupt. */
  private fail(error: Error): void {
    if (this.common.status & Status.DEVICE_NEEDS_RESET) return;
    this.failure = error;
    this.common.status |= Status.DEVICE_NEEDS_RESET;
    this.sendConfigInterrupt();
  }

  /** Runs device work; a driver's broken rule is recorded, and it or any other error sets NEEDS_RESET. */
  guarded(work: () => void): void {
    try {
      work();
    } catch (e) {
      if (e instanceof RuleViolation) this.violations.record(e.rule, e.message, e.queue);
      this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

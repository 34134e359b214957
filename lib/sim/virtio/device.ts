// The generic virtio device behind the PCI function: it owns the common configuration, the
// queues and their device-side state, the status machine's consequences (reset, DRIVER_OK, STOP,
// SUSPEND) and the interrupts; engine.ts serves the queues (always asynchronously, never inside
// the register write that notified it). Device types plug in as a DeviceModel.
//
// A strict device: every driver access the spec forbids is recorded in `violations` (rules.ts);
// the ones that leave the rings or the state untrustworthy put the device into
// DEVICE_NEEDS_RESET with a config interrupt (virtio 1.2 §2.1.2). Nothing is thrown out of the
// event loop. On demand it also misbehaves itself (faults.ts, controls.ts).
//
// Quiet states (STOP, SUSPEND) are quiet.ts; the shapes shared with the engine are types.ts.

import type { GuestMemory } from '../../mem/dma.js';
import { Feature, Isr, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../../spec/index.js';
import { thrownMessage } from '../../util/shown.js';
import { CommonConfig, type CommonConfigHost, type QuietPhase } from './common-cfg.js';
import { QueueEngine, type EngineHost } from './engine.js';
import { FaultSet, type StickyFault } from './faults.js';
import { HeldRequests, type HeldHost } from './held.js';
import type { DeviceModel, ModelHost } from './model.js';
import { PackedDeviceRing } from './ring/packed.js';
import { SimQueue } from './queue.js';
import type { RingContext } from './ring/chain.js';
import { RuleViolation, ViolationLog, type RuleId } from './rules.js';
import { SplitDeviceRing } from './ring/split.js';
import { QuietStates, type QuietHost } from './quiet.js';
import { StateMailbox, mailboxHost } from './state-mailbox.js';
import type { Completion, PciSide, SimStats, StopMode } from './types.js';

export type { Completion, PciSide, SimStats, StopMode } from './types.js';

/** How the PCI function (pci/function.ts) builds its virtio device. */
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

export class SimVirtioDevice implements CommonConfigHost, ModelHost, HeldHost, EngineHost, QuietHost {
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
  /** Serves the queues (engine.ts). */
  readonly engine: QueueEngine;
  private readonly quiet: QuietStates;
  private ringFeatures = { indirect: false, eventIdx: false };
  private isr = 0;
  private generation = 0;
  private configDirty = false;
  /** Fault reset-stuck: a reset was written and never completes (until clearFaults). */
  private stuckReset = false;
  private closed = false;

  constructor(options: SimVirtioDeviceOptions) {
    this.model = options.model;
    this.mem = options.mem;
    this.completion = options.completion;
    this.quiet = new QuietStates(this, options.stopMode);
    this.pci = options.pci;
    this.msixTableSize = options.msixTableSize;
    this.commonLength = options.commonLength;
    this.mailbox = new StateMailbox(mailboxHost(this));
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

  /** The device was closed: nothing scheduled runs any more. */
  get isClosed(): boolean {
    return this.closed;
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

  /** A driver's write into the device configuration: the model's, when it has writable fields (console emerg_wr); else no effect. */
  writeDeviceConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    this.model.writeConfig?.(offset, width, value, this.offeredFeatures);
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
    this.quiet.invalidate();
    if (this.sticky('reset-stuck')) {
      // The reset never completes: the device goes quiet, device_status keeps its old value.
      this.stuckReset = true;
      return;
    }
    this.phase = 'running';
    this.quiet.reset();
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
    // Fault features-accept-any: the device does not look (the driver's mistake is recorded all the same).
    if (extra !== 0n && this.sticky('features-accept-any')) this.violation('feature-not-offered', `features 0x${extra.toString(16)} were not offered`);
    else if (extra !== 0n) return { rule: 'feature-not-offered', message: `features 0x${extra.toString(16)} were not offered` };
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

  /** STOP or SUSPEND requested: stop fetching now; finish (or hold), then show the bit (quiet.ts). */
  quiesce(kind: 'stop' | 'suspend'): void {
    this.quiet.begin(kind);
  }

  /** virtio 1.4 §3.4: SUSPEND cleared, DRIVER_OK set again (quiet.ts). */
  resume(): void {
    this.quiet.resume();
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

  /**
   * Fault reset-stuck cleared (controls.ts): the reset written meanwhile completes now. Returns
   * whether one was stuck.
   */
  finishStuckReset(): boolean {
    if (!this.stuckReset) return false;
    this.stuckReset = false;
    this.reset();
    return true;
  }

  /** A STOP / SUSPEND held back by a fault settles again (quiet.ts); returns whether one was pending. */
  releaseQuiet(): boolean {
    return this.quiet.release();
  }

  close(): void {
    this.closed = true;
    this.engine.cancelTimers();
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

  signalQueue(q: SimQueue): void {
    if (!this.pci.msixActive()) this.raiseIsr(Isr.QUEUE);
    else if (q.msixVector !== VIRTIO_MSI_NO_VECTOR) this.pci.signal(q.msixVector);
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
  fail(error: Error): void {
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
      this.fail(e instanceof Error ? e : new Error(thrownMessage(e), { cause: e }));
    }
  }
}

// VirtioDevice: the device status machine and its queues over any VirtioTransport
// (virtio 1.2 §2.1 status, §3.1.1 initialisation, §2.4 reset), and the device's failure:
// DEVICE_NEEDS_RESET (§2.1.2), a transport that lost its device, or a driver that gave up on it.
//
//   const dev = await VirtioDevice.open(transport, { features: { required: [...] } });
//   const q = dev.setupQueue(0);            // between FEATURES_OK and DRIVER_OK
//   await dev.driverOk();                   // the device is live
//   ...
//   await dev.close();                      // reset, free rings, release the transport
//
// Phases: features-ok → live ⇄ stopped (stop/reinit/resume; state.ts), live → needs-reset (the
// device failed; recover() or close()), → failed (given up for good), → closed.

import { Status, VIRTIO_MSI_NO_VECTOR, deviceTypeName, featureNames, hasFeature, Feature } from '../spec/index.js';
import { DeviceError, UsageError, type UvirtioError } from '../errors.js';
import { negotiateFeatures, type FeaturePolicy } from './features.js';
import { createVirtqueue } from './queue/index.js';
import type { Layout, Virtqueue } from './queue/types.js';
import {
  SNAPSHOT_FORMAT, SNAPSHOT_VERSION, validateSnapshot, type DeviceSnapshot, type Mechanism,
} from './snapshot/index.js';
import { facilityFor, initialVqState, type StateContext, type StateFacility } from './state.js';
import { checkReinit, loadExtraState, saveExtraState } from './reinit-checks.js';
import { queueStateProblem, type DriverView } from './state-checks.js';
import type { VirtioTransport, VqState } from '../transport/types.js';

export interface OpenOptions {
  features?: FeaturePolicy;
  /**
   * Accept the stop/state features the device offers (RING_STATE, DEVICE_STATE, SUSPEND) so that
   * stop()/snapshot()/reinit() can use them (default true). Without them, only quiesce is possible.
   */
  stateFeatures?: boolean;
  /** 'auto' (default) uses MSI-X when the platform gives vectors, else polling. */
  interrupts?: 'auto' | 'msix' | 'poll';
  /** Bound on the wait for device_status to read 0 after a reset, and on each status change (default 1000 ms). */
  resetTimeoutMs?: number;
  /**
   * Bound on how long requests in flight may see no progress before the device is declared
   * unresponsive (E_DEVICE_UNRESPONSIVE): it is reset and those requests are rejected
   * (QueueSet's watchdog). Default 30 000 ms; 1 to 3 600 000.
   */
  requestTimeoutMs?: number;
}

export interface QueueOptions {
  /** Queue size; default the device's maximum. */
  size?: number;
  /** See VirtqueueOptions.indirectThreshold. */
  indirectThreshold?: number;
}

/**
 * features-ok: queues can be set up; live: DRIVER_OK; stopped: stop() succeeded (snapshot,
 * reinit, resume); needs-reset: the device failed (recover() or close()); failed: given up for
 * good (close()); reset: reset() forgot every queue; closed.
 */
export type DevicePhase = 'features-ok' | 'live' | 'stopped' | 'needs-reset' | 'failed' | 'reset' | 'closed';

export interface StopOptions {
  /** 'auto' (default) picks the best the device offers: ring-state, then suspend, then quiesce. */
  mechanism?: Mechanism | 'auto';
  /** Bound on the wait for STOP / SUSPEND to show, or for in-flight requests to drain (default 5000 ms). */
  timeoutMs?: number;
}

export interface ReinitOptions {
  /** Another device of the same type to bring up with the state (default: this device). */
  target?: VirtioTransport;
  /** Bound on each reset and status change of the re-initialisation (default: resetTimeoutMs). */
  timeoutMs?: number;
}

type Listener = () => void;

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export class VirtioDevice {
  private t: VirtioTransport;
  /** The features both sides agreed (what was written and survived FEATURES_OK). */
  readonly features: bigint;
  private offeredFeatures: bigint;
  readonly layout: Layout;
  /** See OpenOptions.requestTimeoutMs. */
  readonly requestTimeoutMs: number;
  private facility: StateFacility | null = null;
  private readonly drainPolicy = new Map<number, boolean>();
  private devicePhase: DevicePhase = 'features-ok';
  private readonly queues = new Map<number, Virtqueue<unknown>>();
  private readonly queueListeners = new Map<number, Listener>();
  private readonly notifiers: (() => void)[] = [];
  private readonly configListeners = new Set<Listener>();
  /** vector → queues it serves; vector 0 also carries configuration changes. */
  private readonly vectorQueues = new Map<number, number[]>();
  private vectors = 0;
  private interruptPreference: 'auto' | 'msix' | 'poll' = 'auto';
  private readonly resetTimeoutMs: number;
  private readonly failureListeners = new Set<(e: UvirtioError) => void>();
  private unwatchLost: (() => void) | undefined;
  private failureError: UvirtioError | null = null;
  /** Each queue as the driver left it at the stop, taken when first needed (state-checks.ts). */
  private viewsAtStop: Map<number, DriverView> | null = null;
  /** Tokens of chains restarted rings forgot during failed reinit attempts, handed back on success. */
  private readonly carried = new Map<number, unknown[]>();
  /**
   * A reinit attempt reset the stopped device (onto another device: the source let go of the
   * rings; a refused one: the target was reset): its queue state is only in the snapshot now.
   */
  private sourceReleased = false;
  /** The snapshot the last reinit attempt was given (snapshot() returns it once the device was reset). */
  private attempted: DeviceSnapshot | null = null;
  /** The stop, reinit, resume or recover in progress (they never overlap), or null. */
  private operation: string | null = null;

  private constructor(transport: VirtioTransport, offered: bigint, features: bigint, layout: Layout, options: OpenOptions) {
    this.t = transport;
    this.offeredFeatures = offered;
    this.features = features;
    this.layout = layout;
    this.resetTimeoutMs = options.resetTimeoutMs ?? 1000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.interruptPreference = options.interrupts ?? 'auto';
    this.watchLost();
  }

  /** Follows the current transport's loss (vhost-user back-end gone): the device needs a reset. */
  private watchLost(): void {
    this.unwatchLost?.();
    this.unwatchLost = this.t.onLost?.((e) => this.markFailed(e));
  }

  /**
   * Called once each time the device fails while live — DEVICE_NEEDS_RESET or FAILED seen, the
   * transport lost its device, a queue's ring protocol broken, or markFailed() by a watchdog —
   * with the error pending requests are to be rejected with. QueueSet resets the device and
   * settles its requests. Returns an unsubscribe.
   */
  onFailure(listener: (e: UvirtioError) => void): () => void {
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  /**
   * Treats the device as failed with `error` (it is then in needs-reset). Only a live device
   * fails this way; for a stopped one the error is remembered (a reinit onto it will fail on its
   * own) and nothing pending is touched: its requests wait for a reinit onto another device.
   */
  markFailed(error: UvirtioError): void {
    if (this.devicePhase === 'closed' || this.devicePhase === 'failed') return;
    if (this.devicePhase !== 'live') {
      this.failureError ??= error;
      return;
    }
    this.failureError = error;
    this.devicePhase = 'needs-reset';
    for (const l of [...this.failureListeners]) l(error);
  }

  /** Why the device failed (needs-reset, failed), or null. */
  get failure(): UvirtioError | null {
    return this.failureError;
  }

  /** The transport of the device now driven (after reinit onto a target, the target's). */
  get transport(): VirtioTransport {
    return this.t;
  }
  /** What the device offered. */
  get offered(): bigint {
    return this.offeredFeatures;
  }
  get deviceType(): number {
    return this.t.deviceType;
  }
  get address(): string {
    return this.t.address;
  }
  /** The device's lifecycle phase (see DevicePhase). */
  get phase(): DevicePhase {
    return this.devicePhase;
  }
  /** @deprecated the lifecycle phase; use `phase` ("state" means virtqueue state elsewhere). */
  get state(): DevicePhase {
    return this.devicePhase;
  }
  /** 'msix' when interrupts are delivered, 'poll' when the driver must poll used rings. */
  get interruptMode(): 'msix' | 'poll' {
    return this.vectors > 0 ? 'msix' : 'poll';
  }

  /**
   * Resets the device and runs §3.1.1 up to FEATURES_OK: ACKNOWLEDGE, DRIVER, negotiation,
   * FEATURES_OK and its read-back. On failure after ACKNOWLEDGE the device is left with FAILED set.
   */
  static async open(transport: VirtioTransport, options: OpenOptions = {}): Promise<VirtioDevice> {
    const resetTimeoutMs = options.resetTimeoutMs ?? 1000;
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1 || requestTimeoutMs > 3_600_000) {
      throw new UsageError('E_INVALID_ARGUMENT', `requestTimeoutMs must be an integer from 1 to 3600000, got ${requestTimeoutMs}`);
    }
    let negotiated: { features: bigint; layout: Layout; offered: bigint } | undefined;
    try {
      await initialise(transport, resetTimeoutMs, (offered) => {
        const policy = { ...options.features, transportExtras: [...(options.features?.transportExtras ?? []), ...stateExtras(transport, options.stateFeatures)] };
        negotiated = { ...negotiateFeatures(offered, policy, transport.deviceType, transport.address), offered };
        return negotiated.features;
      });
      const dev = new VirtioDevice(transport, negotiated!.offered, negotiated!.features, negotiated!.layout, options);
      if (dev.interruptPreference !== 'poll') dev.routeInterrupts(dev.interruptPreference === 'msix');
      return dev;
    } catch (e) {
      if (transport.readStatus() !== 0) transport.writeStatus(transport.readStatus() | Status.FAILED);
      throw e;
    }
  }

  /** Asks for one vector for configuration plus one per queue; vector 0 carries configuration changes. */
  private routeInterrupts(required: boolean): void {
    const t = this.transport;
    this.vectors = t.enableInterrupts(1 + t.numQueues, (vector) => this.onInterrupt(vector));
    if (this.vectors > 0 && t.setConfigVector(0) === VIRTIO_MSI_NO_VECTOR) {
      t.disableInterrupts();
      this.vectors = 0;
    }
    if (this.vectors === 0 && required) {
      throw new DeviceError('E_CAP_MISSING', `${t.address}: MSI-X interrupts were asked for but none could be enabled`,
        'use interrupts: "poll" or "auto"');
    }
  }

  private onInterrupt(vector: number): void {
    if (this.devicePhase === 'closed') return;
    for (const q of this.vectorQueues.get(vector) ?? []) this.queueListeners.get(q)?.();
    if (vector === 0) {
      // §4.1.4.5 / §2.1.2: a configuration interrupt also announces DEVICE_NEEDS_RESET.
      this.pollHealth();
      for (const l of this.configListeners) l();
    }
  }

  /** Sets up queue `index` (after FEATURES_OK, before DRIVER_OK: virtio 1.2 §3.1.1 step 7). */
  setupQueue<T = unknown>(index: number, options: QueueOptions = {}): Virtqueue<T> {
    this.expectPhase('features-ok', 'set up a queue');
    if (this.queues.has(index)) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${index} is already set up`);
    const max = this.t.queueMaxSize(index);
    if (max === 0) {
      throw new DeviceError('E_QUEUE_UNAVAILABLE', `${this.address}: queue ${index} is not available (queue_size reads 0)`);
    }
    const size = options.size ?? max;
    if (size > max) {
      throw new UsageError('E_INVALID_ARGUMENT', `${this.address}: queue ${index} size ${size} exceeds the device's maximum ${max}`);
    }
    const vq = createVirtqueue<T>(this.layout, {
      index,
      size,
      dma: this.t.dma,
      features: { indirect: hasFeature(this.features, Feature.INDIRECT_DESC), eventIdx: hasFeature(this.features, Feature.EVENT_IDX) },
      notify: () => this.notifiers[index]!(),
      ...(options.indirectThreshold !== undefined ? { indirectThreshold: options.indirectThreshold } : {}),
    });
    try {
      this.programQueue(index, vq as Virtqueue<unknown>, initialVqState(this.layout));
    } catch (e) {
      vq.close();
      throw e;
    }
    this.queues.set(index, vq as Virtqueue<unknown>);
    return vq;
  }

  /**
   * Programs queue `index` on the current transport: size, addresses and vector, its state when
   * RING_STATE was negotiated (the proposal: written on every initialisation), then queue_enable.
   */
  private programQueue(index: number, vq: Virtqueue<unknown>, state: VqState, restore = false): void {
    this.configureQueueVector(index, vq);
    // A restored state (ring-state, a back-end's vring base) is always written; a fresh one only
    // when RING_STATE was negotiated.
    if (restore) this.t.ringState!.writeVqState(index, state);
    else if (this.has(Feature.RING_STATE)) this.t.ringState?.writeVqState(index, state);
    this.t.enableQueue(index);
  }

  /**
   * Whether queue `index`'s chains complete by themselves (true, default: blk requests, net tx) or
   * wait on outside events and are reclaimed instead of drained (net rx). Quiesce waits only for
   * the former; after a failure, only the former's are rejected (the latter are posted again).
   */
  setDrainPolicy(index: number, drains: boolean): void {
    this.drainPolicy.set(index, drains);
  }
  drains(index: number): boolean {
    return this.drainPolicy.get(index) ?? true;
  }

  /** Queue q gets its own vector when there are enough, else shares vector 1 (or 0); refused → polled. */
  private configureQueueVector(index: number, vq: Virtqueue<unknown>): void {
    const own = 1 + index < this.vectors ? 1 + index : this.vectors > 1 ? 1 : this.vectors === 1 ? 0 : VIRTIO_MSI_NO_VECTOR;
    const setup = { size: vq.size, addresses: vq.addresses, vector: own };
    const accepted = this.t.configureQueue(index, setup);
    // The notify store of the transport now driving the queue: looked up once here (set-up and
    // reinit), not on every kick.
    this.notifiers[index] = this.t.notifier(index);
    if (accepted !== VIRTIO_MSI_NO_VECTOR) {
      const list = this.vectorQueues.get(accepted) ?? [];
      list.push(index);
      this.vectorQueues.set(accepted, list);
    }
  }

  /** The queue set up at `index`. */
  queue<T = unknown>(index: number): Virtqueue<T> {
    const vq = this.queues.get(index);
    if (!vq) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${index} is not set up`);
    return vq as Virtqueue<T>;
  }
  /** Notifies the device of queue `index` unconditionally (after a reinit or resume: the device's suppression state is fresh). */
  notifyQueue(index: number): void {
    this.notifiers[index]?.();
  }

  /** Whether queue `index` gets interrupts (false: its user must poll). */
  queueHasInterrupts(index: number): boolean {
    for (const qs of this.vectorQueues.values()) if (qs.includes(index)) return true;
    return false;
  }
  /** Called on each used-buffer interrupt for queue `index` (only one listener per queue). */
  onQueueInterrupt(index: number, listener: Listener): void {
    this.queueListeners.set(index, listener);
  }
  onConfigChange(listener: Listener): () => void {
    this.configListeners.add(listener);
    return () => this.configListeners.delete(listener);
  }

  /**
   * Sets DRIVER_OK (virtio 1.2 §3.1.1 step 8) and waits (bounded) until the device has taken it:
   * the device is live. Rejects when the device refuses (E_DEVICE_NEEDS_RESET, E_DEVICE_FAILED,
   * the transport's own codes).
   */
  async driverOk(): Promise<void> {
    this.expectPhase('features-ok', 'set DRIVER_OK');
    this.t.writeStatus(this.t.readStatus() | Status.DRIVER_OK);
    await this.t.flush?.(this.resetTimeoutMs);
    this.checkHealth();
    // Live only once the device took it: a failure before then is the caller's to handle (open,
    // reinit and recover roll back), not a live device's to settle.
    this.devicePhase = 'live';
  }

  /** The device's health from its status: DEVICE_NEEDS_RESET (§2.1.2) or FAILED as an error, else null. */
  healthError(): UvirtioError | null {
    const status = this.t.readStatus();
    if (status & Status.DEVICE_NEEDS_RESET) {
      return new DeviceError('E_DEVICE_NEEDS_RESET', `${this.address} set DEVICE_NEEDS_RESET: it hit an error it cannot recover from`,
        'its requests in flight were rejected (the device may or may not have carried them out); recover() resets and re-initialises it');
    }
    if (status & Status.FAILED) {
      return new DeviceError('E_DEVICE_FAILED', `${this.address} shows FAILED`, 'reset the device and open it again');
    }
    return null;
  }

  /** Throws healthError() when there is one. */
  checkHealth(): void {
    const e = this.healthError();
    if (e) throw e;
  }

  /** Looks at the status register; a live device that shows NEEDS_RESET or FAILED is marked failed. */
  pollHealth(): void {
    if (this.devicePhase !== 'live') return;
    const e = this.healthError();
    if (e) this.markFailed(e);
  }

  /** Reads the status register (for diagnostics and the state facilities). */
  status(): number {
    return this.t.readStatus();
  }

  /** Marks the device FAILED after an irrecoverable driver error (virtio 1.2 §3.1.1); it is given up. */
  fail(): void {
    if (this.devicePhase === 'closed') return;
    this.t.writeStatus(this.t.readStatus() | Status.FAILED);
    this.devicePhase = 'failed';
  }

  /**
   * Resets the device (bounded wait) and forgets every queue: tokens of chains still in flight
   * are returned so their owners can reject them. The device must be opened again to be used.
   */
  async reset(): Promise<unknown[]> {
    await this.t.reset(this.resetTimeoutMs);
    const orphans: unknown[] = [];
    for (const vq of this.queues.values()) {
      orphans.push(...vq.reset());
      vq.close();
    }
    this.queues.clear();
    this.notifiers.length = 0;
    this.vectorQueues.clear();
    this.devicePhase = 'reset';
    return orphans;
  }

  // ---- failure and recovery (QueueSet drives these) ----

  /**
   * After a failure: resets the device so it no longer touches the rings or the buffers (bounded;
   * a device that will not reset is marked FAILED instead). The rings keep what the device wrote.
   */
  async resetAfterFailure(): Promise<void> {
    await this.t.reset(this.resetTimeoutMs).catch(() => markFailedStatus(this.t));
  }

  /** Restarts every ring at index 0 (after a reset); returns, by queue, the tokens of the chains they forgot. */
  restartRings(): Map<number, unknown[]> {
    const orphans = new Map<number, unknown[]>();
    for (const [q, vq] of this.queues) orphans.set(q, vq.reset());
    return orphans;
  }

  /**
   * Brings a failed device back (needs-reset → live): reset, §3.1.1 with the same features, every
   * queue set up again in the same memory at index 0, DRIVER_OK. Returns, by queue, the tokens of
   * chains the restarted rings forgot (QueueSet posts receive buffers again). On failure the device
   * stays in needs-reset.
   */
  async recover(timeoutMs = this.resetTimeoutMs): Promise<Map<number, unknown[]>> {
    return this.exclusive('recover', () => this.recoverNow(timeoutMs));
  }

  private async recoverNow(timeoutMs: number): Promise<Map<number, unknown[]>> {
    this.expectPhase('needs-reset', 'recover');
    const t = this.t;
    try {
      await initialise(t, timeoutMs, () => this.features);
      this.ensureOpen();
      this.reprogram((_q, vq) => ({ state: initialVqState(this.layout), forgotten: vq.reset() }));
      this.devicePhase = 'features-ok';
      await this.driverOk();
      this.ensureOpen();
    } catch (e) {
      if (this.devicePhase === 'closed') throw e;
      this.devicePhase = 'needs-reset';
      // Leave it reset; a device that would not reset in the first place is not waited for again.
      if ((e as UvirtioError).code !== 'E_RESET_TIMEOUT') await t.reset(timeoutMs).catch(() => markFailedStatus(t));
      throw e;
    }
    this.failureError = null;
    return this.takeCarried();
  }

  /** Routes interrupts again and programs every queue; `plan` gives each queue's state (and what a restart forgot). */
  private reprogram(plan: (q: number, vq: Virtqueue<unknown>) => { state: VqState; restore?: boolean; forgotten?: unknown[] }): void {
    this.vectorQueues.clear();
    this.t.disableInterrupts();
    this.vectors = 0;
    if (this.interruptPreference !== 'poll') this.routeInterrupts(this.interruptPreference === 'msix');
    for (const q of [...this.queues.keys()].sort((a, b) => a - b)) {
      const vq = this.queues.get(q)!;
      const { state, restore, forgotten } = plan(q, vq);
      if (forgotten && forgotten.length > 0) this.carried.set(q, [...(this.carried.get(q) ?? []), ...forgotten]);
      this.programQueue(q, vq, state, restore);
    }
  }

  private takeCarried(): Map<number, unknown[]> {
    const out = new Map(this.carried);
    this.carried.clear();
    return out;
  }

  /**
   * Resets the device, frees the rings, releases interrupts and the transport. Idempotent; never
   * throws for a device that will not reset (it is marked FAILED). Returns, by queue, the tokens of
   * every chain that was still in flight, for their owners to reject.
   */
  async close(): Promise<Map<number, unknown[]>> {
    const orphans = this.takeCarried();
    if (this.devicePhase === 'closed') return orphans;
    // First: a stop, reinit, resume or recover in progress sees it at its next step and ends.
    this.devicePhase = 'closed';
    try {
      await this.t.reset(this.resetTimeoutMs).catch(() => markFailedStatus(this.t));
    } finally {
      for (const [q, vq] of this.queues) {
        if (!vq.broken || vq.broken.code !== 'E_CLOSED') orphans.set(q, [...(orphans.get(q) ?? []), ...vq.inFlightTokens()]);
        vq.close();
      }
      this.queues.clear();
      this.notifiers.length = 0;
      this.t.disableInterrupts();
      this.unwatchLost?.();
      this.t.close();
    }
    return orphans;
  }

  has(feature: number): boolean {
    return hasFeature(this.features, feature);
  }

  // ---- stop / virtqueue state / reinit (the proposal; lib/virtio/state.ts) ----

  /** The mechanisms this device supports now, best first. */
  mechanisms(): Mechanism[] {
    const m: Mechanism[] = [];
    if (this.has(Feature.RING_STATE) && this.t.ringState) m.push('ring-state');
    if (this.t.backendState) m.push('backend');
    if (this.has(Feature.SUSPEND)) m.push('suspend');
    m.push('quiesce');
    return m;
  }

  /** The mechanism used by the last stop(), or null. */
  get mechanism(): Mechanism | null {
    return this.facility?.mechanism ?? null;
  }

  private stateContext(): StateContext {
    const live = this.devicePhase;
    return {
      transport: this.t, layout: this.layout, queues: this.queues, drains: (q) => this.drains(q),
      failure: () => {
        if (this.devicePhase === 'closed') return new UsageError('E_CLOSED', `${this.address}: the device was closed during the stop`);
        return live === 'live' && this.devicePhase === 'needs-reset' ? this.failureError : null;
      },
    };
  }

  /**
   * Stops the device so its queue state can be read. Callers stop submitting first (a RequestQueue
   * is paused; anything added to a ring meanwhile is simply picked up after reinit or resume).
   * Stopping a stopped device does nothing.
   */
  async stop(options: StopOptions = {}): Promise<Mechanism> {
    if (this.devicePhase === 'stopped' && this.facility && !this.operation) return this.facility.mechanism;
    return this.exclusive('stop', () => this.stopNow(options));
  }

  private async stopNow(options: StopOptions): Promise<Mechanism> {
    this.expectPhase('live', 'stop');
    const offered = this.mechanisms();
    const wanted = options.mechanism ?? 'auto';
    const mechanism = wanted === 'auto' ? offered[0]! : wanted;
    if (!offered.includes(mechanism)) {
      throw new DeviceError('E_STATE_UNSUPPORTED', `${this.address} does not support the ${mechanism} mechanism (it supports ${offered.join(', ')})`,
        mechanism === 'ring-state' ? 'the device must offer VIRTIO_F_RING_STATE' : mechanism === 'suspend' ? 'the device must offer VIRTIO_F_SUSPEND' : 'use --mechanism auto');
    }
    const facility = facilityFor(mechanism, this.t);
    try {
      await facility.stop(this.stateContext(), options.timeoutMs ?? 5000);
    } catch (e) {
      this.ensureOpen();
      // STOP (one-way) or SUSPEND was asked for and never showed: the device may be stopping for
      // ever and complete nothing more. It is failed (reset, its requests rejected; recover()).
      const code = (e as UvirtioError).code;
      if ((code === 'E_STOP_TIMEOUT' || code === 'E_SUSPEND_TIMEOUT') && facility.mechanism !== 'quiesce') this.markFailed(e as UvirtioError);
      throw e;
    }
    this.ensureOpen();
    // The device may have failed while it was being stopped (a watchdog, a lost back-end).
    if (this.devicePhase !== 'live') throw this.failureError ?? new UsageError('E_BAD_STATE', `${this.address}: the device is ${this.devicePhase}`);
    this.facility = facility;
    this.devicePhase = 'stopped';
    this.viewsAtStop = null;
    this.sourceReleased = false;
    return mechanism;
  }

  /**
   * Each queue as the driver left it at this stop (what it made available and consumed), taken the
   * first time it is needed after stop() — by then the caller has taken every used element.
   */
  private stopViews(): Map<number, DriverView> {
    if (!this.viewsAtStop) {
      this.viewsAtStop = new Map();
      for (const [q, vq] of this.queues) {
        const s = vq.exportState();
        this.viewsAtStop.set(q, { layout: this.layout, size: vq.size, nextAvail: s.nextAvail, lastUsed: s.lastUsed, inFlight: vq.inFlight });
      }
    }
    return this.viewsAtStop;
  }

  /**
   * Queue `q`'s state. Only while stopped: the proposal lets the driver read it only while STOP
   * shows. State a device reports (ring-state registers, a back-end) is checked against the
   * driver's own rings first: E_DEVICE_BAD_STATE when it cannot be true.
   */
  vqState(q: number): VqState {
    this.ensureOpen();
    if (this.sourceReleased) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${this.address}: the device was reset by a reinit attempt; its queue state is in the snapshot that reinit was given`,
        'snapshot() returns that snapshot; reinit from it (on this device or another)');
    }
    if (this.devicePhase !== 'stopped' || !this.facility) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${this.address}: queue state can only be read while the device is stopped (it is ${this.devicePhase})`,
        'call stop() first; a running device\'s state registers do not describe a consistent point');
    }
    const vq = this.queues.get(q);
    if (!vq) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not set up`);
    // A ring the device broke (even after the stop) has no state worth carrying anywhere.
    if (vq.broken) throw vq.broken;
    if (vq.usedPending()) {
      throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} has used elements the driver has not taken yet`,
        'take them first (RequestQueue.processUsed(), Virtqueue.popUsed()): the state is checked against what the driver consumed; QueueSet.stop() does this');
    }
    const state = this.facility.vqState(this.stateContext(), q);
    if (this.facility.restoresIndices) {
      const mayHold = this.facility.mechanism === 'ring-state' && this.has(Feature.DEVICE_STATE);
      const problem = queueStateProblem(this.stopViews().get(q)!, state, { mayHold });
      if (problem) {
        throw new DeviceError('E_DEVICE_BAD_STATE', `${this.address}: queue ${q} reports impossible state: ${problem}`,
          `the device's ${this.facility.mechanism} state disagrees with the rings the driver keeps; a reinit from it would lose or repeat requests — reset the device, or stop with --mechanism quiesce`);
      }
    }
    return state;
  }

  /** Everything reinit() needs, as plain JSON-serialisable data (lib/virtio/snapshot.ts). */
  snapshot(): DeviceSnapshot {
    this.ensureOpen();
    if (this.devicePhase !== 'stopped' || !this.facility) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${this.address}: a snapshot is taken while the device is stopped (it is ${this.devicePhase})`,
        'call stop() first');
    }
    // A reinit attempt reset the device: its state is the snapshot that attempt was given.
    if (this.sourceReleased && this.attempted) return this.attempted;
    const states = [...this.queues.keys()].sort((a, b) => a - b).map((q) => ({ q, s: this.vqState(q), vq: this.queues.get(q)! }));
    return validateSnapshot({
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      createdAt: new Date().toISOString(),
      source: this.address,
      deviceType: this.deviceType,
      deviceTypeName: deviceTypeName(this.deviceType),
      mechanism: this.facility!.mechanism,
      layout: this.layout,
      features: `0x${this.features.toString(16)}`,
      featureNames: featureNames(this.features, this.deviceType),
      queues: states.map(({ q, s, vq }) => ({
        index: q, size: vq.size, vector: this.vectorOf(q),
        desc: hex(vq.addresses.desc), driver: hex(vq.addresses.driver), device: hex(vq.addresses.device),
        availState: s.avail, usedState: s.used, inFlight: vq.inFlight,
      })),
      // Not copied: a generic read of the device configuration would read multi-byte fields byte by
      // byte and fields of features never offered, which virtio 1.2 §4.1.3.1 and §2.5.1 forbid;
      // reinit never needs it (the target's own configuration is the one that counts).
      config: '',
      deviceState: this.saveDeviceState(),
    });
  }

  private vectorOf(q: number): number {
    for (const [v, qs] of this.vectorQueues) if (qs.includes(q)) return v;
    return VIRTIO_MSI_NO_VECTOR;
  }

  /** The DEVICE_STATE mailbox (ring-state only): the device's extra state, opaque, as hex. */
  private saveDeviceState(): { bytes: string } | null {
    if (this.facility?.mechanism !== 'ring-state' || !this.has(Feature.DEVICE_STATE)) return null;
    return saveExtraState(this.t);
  }

  /**
   * Resets the device (or brings up `target`, another device of the same type reaching the same
   * DMA memory) and re-initialises it with the snapshot: the rings stay where they are, as guest
   * memory does in a live migration. The snapshot is validated in full first (SnapshotError codes),
   * against the target and against the driver's own rings (E_SNAPSHOT_INCONSISTENT).
   *
   * With ring-state (and backend) the device continues from the snapshot's indices. Otherwise
   * (suspend, quiesce) each ring restarts at index 0, and the tokens of chains still in flight —
   * ones the old device never fetched, or receive buffers it never filled — are returned by queue,
   * for the caller to make available again (RequestQueue.repost) after this resolves.
   *
   * A transaction: when the target refuses (features, device state, a timeout), it is reset, the
   * driver stays stopped, and the same snapshot can be tried again — on another target, or on the
   * source (`target` omitted, or the source's transport). Only when the refusing target had already
   * completed requests (so a retry would do them twice) does the device go to `failed`: then no
   * retry is possible and the caller rejects what is pending.
   */
  async reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<Map<number, unknown[]>> {
    return this.exclusive('reinit', () => this.reinitNow(snapshot, options));
  }

  private async reinitNow(snapshot: DeviceSnapshot, options: ReinitOptions): Promise<Map<number, unknown[]>> {
    const snap = validateSnapshot(snapshot);
    this.expectPhase('stopped', 'reinit');
    const target = options.target ?? this.t;
    const offered = target.deviceFeatures();
    checkReinit(snap, { deviceType: this.deviceType, features: this.features, layout: this.layout, queues: this.queues, views: this.stopViews() }, target, offered);
    const restoresIndices = snap.mechanism === 'ring-state' || snap.mechanism === 'backend';
    const timeoutMs = options.timeoutMs ?? this.resetTimeoutMs;
    const source = this.t;
    if (target !== source && !this.sourceReleased) {
      // The source must let go of the rings before the target takes them: a stopped, suspended or
      // quiesced source still has DRIVER_OK (or could resume) and the ring addresses. A source that
      // cannot be reset (gone, wedged) does not hold up the migration; it is failed instead.
      source.disableInterrupts();
      await source.reset(timeoutMs).catch(() => markFailedStatus(source));
      this.sourceReleased = true;
      this.ensureOpen();
    }
    this.attempted = snap;
    this.t = target;
    let stateBuf: { free(): void } | null = null;
    try {
      await initialise(target, timeoutMs, () => BigInt(snap.features));
      this.reprogram((q, vq) => {
        const sq = snap.queues.find((x) => x.index === q)!;
        return restoresIndices ? { state: { avail: sq.availState, used: sq.usedState }, restore: true } : { state: initialVqState(this.layout), forgotten: vq.reset() };
      });
      if (snap.deviceState && restoresIndices && this.has(Feature.DEVICE_STATE) && target.ringState?.hasDeviceState) {
        stateBuf = loadExtraState(target, snap.deviceState.bytes);
      }
      this.ensureOpen();
      this.devicePhase = 'features-ok';
      await this.driverOk();
      this.ensureOpen();
    } catch (e) {
      await this.rollBack(source, target, timeoutMs);
      throw e;
    } finally {
      stateBuf?.free();
    }
    if (target !== source) {
      this.offeredFeatures = offered;
      this.watchLost();
    }
    this.facility = null;
    this.viewsAtStop = null;
    this.sourceReleased = false;
    this.attempted = null;
    this.failureError = null;
    return this.takeCarried();
  }

  /**
   * A reinit attempt failed: the target lets go of the rings, and the driver is stopped again on
   * the source, ready for another attempt. If the target completed requests before it failed, a
   * retry would do them twice: the device goes to `failed` instead.
   */
  private async rollBack(source: VirtioTransport, target: VirtioTransport, timeoutMs: number): Promise<void> {
    if (this.devicePhase === 'closed') return; // close() resets and releases everything itself
    try {
      target.disableInterrupts();
    } catch {
      // a transport that cannot even do this is reset (or failed) below
    }
    await target.reset(timeoutMs).catch(() => markFailedStatus(target));
    this.t = source;
    this.vectors = 0;
    this.vectorQueues.clear();
    this.sourceReleased = true; // the target was reset: on the source too when they are one device
    if ((this.devicePhase as DevicePhase) === 'closed') return; // closed during the reset
    const worked = [...this.queues.values()].some((vq) => vq.usedPending());
    this.devicePhase = worked ? 'failed' : 'stopped';
  }

  /** Leaves the stopped state without a reset: SUSPEND clears; quiesce just goes on. STOP is one-way. */
  async resume(timeoutMs = 5000): Promise<void> {
    return this.exclusive('resume', () => this.resumeNow(timeoutMs));
  }

  private async resumeNow(timeoutMs: number): Promise<void> {
    this.expectPhase('stopped', 'resume');
    const f = this.facility!;
    if (!f.resume || this.sourceReleased) {
      throw new DeviceError('E_STATE_UNSUPPORTED', `${this.address}: ${f.mechanism} cannot be resumed${this.sourceReleased ? ' (the device was reset for a reinit)' : ': STOP is one-way'}`,
        'reinit the device (the same one or another) from its snapshot');
    }
    await f.resume(this.stateContext(), timeoutMs);
    this.ensureOpen();
    this.facility = null;
    this.devicePhase = 'live';
    // A fault seen while it was stopped (a ring it broke while draining, a lost back-end) is
    // acted on now that the device is live again.
    const seen = this.failureError;
    this.failureError = null;
    if (seen) this.markFailed(seen);
  }

  /**
   * Runs one of stop, reinit, resume, recover: never two at once (the second is refused), and a
   * close() meanwhile ends it with E_CLOSED at its next step.
   */
  private async exclusive<T>(what: string, body: () => Promise<T>): Promise<T> {
    if (this.operation) {
      throw new UsageError('E_BAD_STATE', `${this.address}: cannot ${what} while a ${this.operation} is in progress`,
        'wait for it to settle (each is bounded), then try again');
    }
    this.operation = what;
    try {
      return await body();
    } finally {
      this.operation = null;
    }
  }

  /** Throws E_CLOSED once close() was called (an operation's steps check it after each wait). */
  private ensureOpen(): void {
    if (this.devicePhase === 'closed') {
      throw new UsageError('E_CLOSED', `${this.address}: the device is closed`, 'nothing more happens on a closed device; open it again');
    }
  }

  private expectPhase(phase: DevicePhase, what: string): void {
    if (this.devicePhase !== phase) {
      const why = this.failureError ? ` (${this.failureError.code}: ${this.failureError.message})` : '';
      throw new UsageError('E_BAD_STATE', `${this.address}: cannot ${what} while the device is ${this.devicePhase}${why}`);
    }
  }
}

/**
 * virtio 1.2 §3.1.1 steps 1–6, written once for open, reinit and recover: reset (bounded),
 * ACKNOWLEDGE, DRIVER, the features `choose` picks from those offered, FEATURES_OK, and the
 * read-back — a device that cannot work with the subset leaves FEATURES_OK clear.
 */
async function initialise(t: VirtioTransport, timeoutMs: number, choose: (offered: bigint) => bigint): Promise<void> {
  await t.reset(timeoutMs);
  t.writeStatus(Status.ACKNOWLEDGE);
  t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  const features = choose(t.deviceFeatures());
  t.writeDriverFeatures(features);
  t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  await t.flush?.(timeoutMs);
  if ((t.readStatus() & Status.FEATURES_OK) === 0) {
    throw new DeviceError('E_FEATURES_NOT_OK', `${t.address} refused features ${featureNames(features, t.deviceType)} (FEATURES_OK did not stick)`,
      'the device cannot work with this feature set; compare `uvirtio info` with the driver\'s feature policy, or use a device that offers the same features');
  }
}

/** Writes FAILED where the device can still be reached (virtio 1.2 §3.1.1: the driver gave up on it); never throws. */
function markFailedStatus(t: VirtioTransport): void {
  try {
    t.writeStatus(t.readStatus() | Status.FAILED);
  } catch {
    // closed or gone: nothing left to tell it
  }
}

function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

/** The state features to accept: those whose registers the transport has (RING_STATE, DEVICE_STATE), and SUSPEND. */
function stateExtras(t: VirtioTransport, wanted: boolean | undefined): number[] {
  if (wanted === false) return [];
  const extras: number[] = [Feature.SUSPEND];
  if (t.ringState) extras.push(Feature.RING_STATE);
  if (t.ringState?.hasDeviceState) extras.push(Feature.DEVICE_STATE);
  return extras;
}

// VirtioDevice: the device status machine and its queues over any VirtioTransport
// (virtio 1.2 §2.1 status, §3.1.1 initialisation, §2.4 reset).
//
//   const dev = await VirtioDevice.open(transport, { features: { required: [...] } });
//   const q = dev.setupQueue(0);            // between FEATURES_OK and DRIVER_OK
//   await dev.driverOk();                   // the device is live
//   ...
//   await dev.close();                      // reset, free rings, release the transport

import { Status, VIRTIO_MSI_NO_VECTOR, deviceTypeName, featureNames, hasFeature, Feature } from './constants.js';
import { DeviceError, UsageError, type UvirtioError } from './errors.js';
import { negotiateFeatures, type FeaturePolicy } from './features.js';
import { createVirtqueue } from './queue/index.js';
import type { Layout, Virtqueue } from './queue/types.js';
import {
  SNAPSHOT_FORMAT, SNAPSHOT_VERSION, validateSnapshot, type DeviceSnapshot, type Mechanism,
} from './snapshot.js';
import { facilityFor, initialVqState, type StateContext, type StateFacility } from './state.js';
import { checkReinit, loadExtraState, saveExtraState } from './reinit-checks.js';
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
  /** Bound on the wait for device_status to read 0 after a reset (default 1000 ms). */
  resetTimeoutMs?: number;
}

export interface QueueOptions {
  /** Queue size; default the device's maximum. */
  size?: number;
  /** See VirtqueueOptions.indirectThreshold. */
  indirectThreshold?: number;
}

export type DevicePhase = 'features-ok' | 'live' | 'stopped' | 'reset' | 'failed' | 'closed';

export interface StopOptions {
  /** 'auto' (default) picks the best the device offers: ring-state, then suspend, then quiesce. */
  mechanism?: Mechanism | 'auto';
  /** Bound on the wait for STOP / SUSPEND to show, or for in-flight requests to drain (default 5000 ms). */
  timeoutMs?: number;
}

export interface ReinitOptions {
  /** Another device of the same type to bring up with the state (default: this device). */
  target?: VirtioTransport;
  timeoutMs?: number;
}

type Listener = () => void;

export class VirtioDevice {
  private t: VirtioTransport;
  /** The features both sides agreed (what was written and survived FEATURES_OK). */
  readonly features: bigint;
  private offeredFeatures: bigint;
  readonly layout: Layout;
  private facility: StateFacility | null = null;
  private readonly drainPolicy = new Map<number, boolean>();
  private phase: DevicePhase = 'features-ok';
  private readonly queues = new Map<number, Virtqueue<unknown>>();
  private readonly queueListeners = new Map<number, Listener>();
  private readonly notifiers: (() => void)[] = [];
  private readonly configListeners = new Set<Listener>();
  /** vector → queues it serves; vector 0 also carries configuration changes. */
  private readonly vectorQueues = new Map<number, number[]>();
  private vectors = 0;
  private interruptPreference: 'auto' | 'msix' | 'poll' = 'auto';
  private readonly resetTimeoutMs: number;
  private readonly lostListeners = new Set<(e: UvirtioError) => void>();
  private unwatchLost: (() => void) | undefined;

  private constructor(transport: VirtioTransport, offered: bigint, features: bigint, layout: Layout, resetTimeoutMs: number) {
    this.t = transport;
    this.offeredFeatures = offered;
    this.features = features;
    this.layout = layout;
    this.resetTimeoutMs = resetTimeoutMs;
    this.watchLost();
  }

  /** Follows the current transport's loss (vhost-user back-end gone): the device fails, listeners hear it. */
  private watchLost(): void {
    this.unwatchLost?.();
    this.unwatchLost = this.t.onLost?.((e) => {
      if (this.phase === 'closed') return;
      this.phase = 'failed';
      for (const l of this.lostListeners) l(e);
    });
  }

  /** Called when the device is lost for good (its transport says so); QueueSet fails its queues. */
  onLost(listener: (e: UvirtioError) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
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
  get state(): DevicePhase {
    return this.phase;
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
    await transport.reset(resetTimeoutMs);
    transport.writeStatus(Status.ACKNOWLEDGE);
    transport.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    try {
      const offered = transport.deviceFeatures();
      const policy = { ...options.features, transportExtras: [...(options.features?.transportExtras ?? []), ...stateExtras(transport, options.stateFeatures)] };
      const { features, layout } = negotiateFeatures(offered, policy, transport.deviceType, transport.address);
      transport.writeDriverFeatures(features);
      transport.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
      await transport.flush?.(resetTimeoutMs);
      // §3.1.1 step 6: re-read; a device that cannot work with the subset clears FEATURES_OK.
      if ((transport.readStatus() & Status.FEATURES_OK) === 0) {
        throw new DeviceError('E_FEATURES_NOT_OK', `${transport.address} refused features ${featureNames(features, transport.deviceType)} (FEATURES_OK did not stick)`,
          'the device needs a feature the driver does not accept; compare `uvirtio info` with your feature policy');
      }
      const dev = new VirtioDevice(transport, offered, features, layout, resetTimeoutMs);
      dev.interruptPreference = options.interrupts ?? 'auto';
      if (dev.interruptPreference !== 'poll') dev.routeInterrupts(dev.interruptPreference === 'msix');
      return dev;
    } catch (e) {
      transport.writeStatus(transport.readStatus() | Status.FAILED);
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
    if (this.phase === 'closed') return;
    for (const q of this.vectorQueues.get(vector) ?? []) this.queueListeners.get(q)?.();
    if (vector === 0) {
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
      this.configureQueueVector(index, vq);
      // The proposal: with RING_STATE the driver writes the state on every initialisation.
      if (this.has(Feature.RING_STATE)) this.t.ringState?.writeVqState(index, initialVqState(this.layout));
      this.t.enableQueue(index);
    } catch (e) {
      vq.close();
      throw e;
    }
    this.queues.set(index, vq as Virtqueue<unknown>);
    return vq;
  }

  /**
   * Whether queue `index`'s chains complete by themselves (true, default: blk requests, net tx) or
   * wait on outside events and are reclaimed instead of drained (net rx). Quiesce waits only for
   * the former.
   */
  setDrainPolicy(index: number, drains: boolean): void {
    this.drainPolicy.set(index, drains);
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
    this.phase = 'live';
    await this.t.flush?.(this.resetTimeoutMs);
    this.checkHealth();
  }

  /**
   * Throws when the device has signalled DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) or shows FAILED.
   * Drivers call it when a request fails or a configuration interrupt arrives.
   */
  checkHealth(): void {
    const status = this.t.readStatus();
    if (status & Status.DEVICE_NEEDS_RESET) {
      throw new DeviceError('E_DEVICE_NEEDS_RESET', `${this.address} set DEVICE_NEEDS_RESET: it hit an error it cannot recover from`,
        'reset and re-initialise the device (device.reset(), then open it again)');
    }
    if (status & Status.FAILED) {
      throw new DeviceError('E_DEVICE_FAILED', `${this.address} shows FAILED`, 'reset the device and open it again');
    }
  }

  /** Reads the status register (for diagnostics and the state facilities). */
  status(): number {
    return this.t.readStatus();
  }

  /** Marks the device FAILED after an irrecoverable driver error (virtio 1.2 §3.1.1). */
  fail(): void {
    if (this.phase === 'closed') return;
    this.t.writeStatus(this.t.readStatus() | Status.FAILED);
    this.phase = 'failed';
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
    this.phase = 'reset';
    return orphans;
  }

  /** Resets the device, frees the rings, releases interrupts and the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    try {
      await this.t.reset(this.resetTimeoutMs);
    } finally {
      for (const vq of this.queues.values()) vq.close();
      this.queues.clear();
      this.notifiers.length = 0;
      this.t.disableInterrupts();
      this.unwatchLost?.();
      this.t.close();
      this.phase = 'closed';
    }
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
    return { transport: this.t, layout: this.layout, queues: this.queues, drains: (q) => this.drainPolicy.get(q) ?? true };
  }

  /**
   * Stops the device so its queue state can be read. Callers stop submitting first (a RequestQueue
   * is paused; anything added to a ring meanwhile is simply picked up after reinit or resume).
   * Stopping a stopped device does nothing.
   */
  async stop(options: StopOptions = {}): Promise<Mechanism> {
    if (this.phase === 'stopped' && this.facility) return this.facility.mechanism;
    this.expectPhase('live', 'stop');
    const offered = this.mechanisms();
    const wanted = options.mechanism ?? 'auto';
    const mechanism = wanted === 'auto' ? offered[0]! : wanted;
    if (!offered.includes(mechanism)) {
      throw new DeviceError('E_STATE_UNSUPPORTED', `${this.address} does not support the ${mechanism} mechanism (it supports ${offered.join(', ')})`,
        mechanism === 'ring-state' ? 'the device must offer VIRTIO_F_RING_STATE' : mechanism === 'suspend' ? 'the device must offer VIRTIO_F_SUSPEND' : 'use --mechanism auto');
    }
    const facility = facilityFor(mechanism, this.t);
    await facility.stop(this.stateContext(), options.timeoutMs ?? 5000);
    this.facility = facility;
    this.phase = 'stopped';
    return mechanism;
  }

  /** Queue `q`'s state. Only while stopped: the proposal lets the driver read it only while STOP shows. */
  vqState(q: number): VqState {
    if (this.phase !== 'stopped' || !this.facility) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${this.address}: queue state can only be read while the device is stopped (it is ${this.phase})`,
        'call stop() first; a running device\'s state registers do not describe a consistent point');
    }
    if (!this.queues.has(q)) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not set up`);
    return this.facility.vqState(this.stateContext(), q);
  }

  /** Everything reinit() needs, as plain JSON-serialisable data (lib/virtio/snapshot.ts). */
  snapshot(): DeviceSnapshot {
    const states = [...this.queues.keys()].sort((a, b) => a - b).map((q) => ({ q, s: this.vqState(q), vq: this.queues.get(q)! }));
    const config = this.t.configLength > 0 ? Buffer.from(this.t.readConfigBytes(0, this.t.configLength)).toString('hex') : '';
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
      config,
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
   * memory does in a live migration. The snapshot is validated in full first (SnapshotError codes).
   *
   * With ring-state the device continues from the snapshot's indices. Otherwise (suspend, quiesce)
   * each ring restarts at index 0, and the tokens of chains still in flight — ones the old device
   * never fetched, or receive buffers it never filled — are returned by queue, for the caller to
   * make available again (RequestQueue.repost) after this resolves.
   */
  async reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<Map<number, unknown[]>> {
    const snap = validateSnapshot(snapshot);
    this.expectPhase('stopped', 'reinit');
    const target = options.target ?? this.t;
    const offered = target.deviceFeatures();
    checkReinit(snap, { deviceType: this.deviceType, features: this.features, layout: this.layout, queues: this.queues }, target, offered);
    const features = BigInt(snap.features);
    const restoresIndices = snap.mechanism === 'ring-state' || snap.mechanism === 'backend';
    const timeoutMs = options.timeoutMs ?? this.resetTimeoutMs;
    if (target !== this.t) {
      // The source must let go of the rings before the target takes them: a stopped, suspended or
      // quiesced source still has DRIVER_OK (or could resume) and the ring addresses. A source that
      // cannot be reset (gone, wedged) does not hold up the migration; it is failed instead.
      this.t.disableInterrupts();
      await this.t.reset(timeoutMs).catch(() => this.t.writeStatus(Status.FAILED));
      this.t = target;
      this.offeredFeatures = offered;
      this.watchLost();
    }
    const t = this.t;
    await t.reset(timeoutMs);
    t.writeStatus(Status.ACKNOWLEDGE);
    t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    t.writeDriverFeatures(features);
    t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
    await t.flush?.(timeoutMs);
    if ((t.readStatus() & Status.FEATURES_OK) === 0) {
      this.fail();
      throw new DeviceError('E_FEATURES_NOT_OK', `${t.address} refused the snapshot's features ${snap.featureNames}`);
    }
    this.vectorQueues.clear();
    t.disableInterrupts();
    this.vectors = 0;
    if (this.interruptPreference !== 'poll') this.routeInterrupts(this.interruptPreference === 'msix');
    let stateBuf: { free(): void } | null = null;
    const orphans = new Map<number, unknown[]>();
    try {
      for (const sq of snap.queues) {
        const vq = this.queues.get(sq.index)!;
        this.configureQueueVector(sq.index, vq);
        if (restoresIndices) {
          t.ringState!.writeVqState(sq.index, { avail: sq.availState, used: sq.usedState });
        } else {
          orphans.set(sq.index, vq.reset());
          if (this.has(Feature.RING_STATE)) t.ringState?.writeVqState(sq.index, initialVqState(this.layout));
        }
        t.enableQueue(sq.index);
      }
      if (snap.deviceState && restoresIndices && this.has(Feature.DEVICE_STATE) && t.ringState?.hasDeviceState) {
        stateBuf = loadExtraState(t, snap.deviceState.bytes);
      }
      this.phase = 'features-ok';
      await this.driverOk();
    } catch (e) {
      this.fail();
      throw e;
    } finally {
      stateBuf?.free();
    }
    this.facility = null;
    return orphans;
  }

  /** Leaves the stopped state without a reset: SUSPEND clears; quiesce just goes on. STOP is one-way. */
  async resume(timeoutMs = 5000): Promise<void> {
    this.expectPhase('stopped', 'resume');
    const f = this.facility!;
    if (!f.resume) {
      throw new DeviceError('E_STATE_UNSUPPORTED', `${this.address}: ${f.mechanism} cannot be resumed: STOP is one-way`,
        'reinit the device (the same one or another) from its snapshot');
    }
    await f.resume(this.stateContext(), timeoutMs);
    this.facility = null;
    this.phase = 'live';
  }

  private expectPhase(phase: DevicePhase, what: string): void {
    if (this.phase !== phase) {
      throw new UsageError('E_BAD_STATE', `${this.address}: cannot ${what} while the device is ${this.phase}`);
    }
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

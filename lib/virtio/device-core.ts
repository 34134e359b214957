// What a VirtioDevice is made of, shared by its parts (device.ts: phases and queues;
// state/migration.ts: stop, snapshot, reinit, resume; recovery.ts: failure and recover): the
// transport driven now, the negotiated features, the lifecycle phase, one record per queue, the
// interrupt routing, and the failure. Internal: users hold a VirtioDevice.

import { Feature, Status, VIRTIO_MSI_NO_VECTOR, featureNames, hasFeature } from '../spec/index.js';
import { DeviceError, UsageError, type UvirtioError } from '../errors.js';
import type { Layout, Virtqueue } from './queue/types.js';
import type { StateFacility, VirtioTransport, VqState } from '../transport/types.js';
import { InterruptRouter, type InterruptPreference } from './interrupts.js';
import { initialVqState, quiesceFacility } from './state/quiesce.js';
import { createVirtqueue } from './queue/index.js';
import { Listeners } from '../util/listeners.js';
import type { TransportOwner } from './transport-owner.js';
import { checkValue, flag, int, optionalValue, optionsObject, type OptionKeys } from '../util/options.js';
import { shown } from '../util/shown.js';

/**
 * A device's lifecycle phase (not a virtqueue's state). features-ok: queues can be set up; live:
 * DRIVER_OK; stopped: stop() succeeded (snapshot, reinit, resume); needs-reset: the device failed
 * (recover() or close()); failed: given up for good (close()); reset: reset() forgot every queue;
 * closed.
 */
export type DevicePhase = 'features-ok' | 'live' | 'stopped' | 'needs-reset' | 'failed' | 'reset' | 'closed';

/** A queue's policy, given once at set-up (VirtioDevice.setupQueue). */
export interface QueueOptions {
  /** Queue size in entries; default the device's maximum. */
  size?: number;
  /** See VirtqueueOptions.indirectThreshold. */
  indirectThreshold?: number;
  /**
   * Whether the queue's chains complete by themselves (true, default: blk requests, net tx) or
   * wait on outside events and are reclaimed instead of drained (net rx). Quiesce waits only for
   * the former; after a failure only the former's are rejected (the latter are posted again).
   */
  drains?: boolean;
  /** Called on each used-buffer interrupt for the queue (none when it is polled). */
  onUsed?: () => void;
}

/** QueueOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
export const QUEUE_OPTION_KEYS: OptionKeys<QueueOptions> = { size: true, indirectThreshold: true, drains: true, onUsed: true };

/** Everything the device keeps about one queue, given at set-up (VirtioDevice.setupQueue). */
export interface QueueRecord {
  /** The queue's index on the device. */
  readonly index: number;
  /** The ring (split or packed), owned by the record for the device's life. */
  readonly vq: Virtqueue<unknown>;
  /** The MSI-X vector the device accepted for it, or VIRTIO_MSI_NO_VECTOR (polled). */
  vector: number;
  /** The current transport's notify store for it (looked up at each programming, not per kick). */
  notify: () => void;
  /** Whether its chains complete by themselves (blk, tx) or wait on outside events (net rx: false). */
  readonly drains: boolean;
  /** Called on each used-buffer interrupt for it. */
  readonly onUsed: (() => void) | undefined;
}

/** The shared parts of one VirtioDevice (internal: not exported from the package). */
export class DeviceCore {
  /** The lifecycle phase (see DevicePhase). */
  phase: DevicePhase = 'features-ok';
  /** Why the device failed (needs-reset, failed), or a fault seen while stopped; null otherwise. */
  failure: UvirtioError | null = null;
  /** One record per queue set up, by queue index. */
  readonly queues = new Map<number, QueueRecord>();
  /** The interrupt routing on the current transport. */
  readonly interrupts: InterruptRouter;
  /** The stop, reinit, resume, recover, reset or driverOk in progress (they never overlap), or null. */
  operation: string | null = null;
  /** Tokens of chains restarted rings forgot (failed reinit attempts, recover), handed back on success. */
  readonly carried = new Map<number, unknown[]>();
  private readonly failureListeners = new Listeners<[UvirtioError]>('device failure');
  /** Told when close() reset the device, with the tokens of the chains it took back (VirtioDevice.onClose). */
  readonly closeListeners = new Listeners<[Map<number, unknown[]>]>('device close');
  /** Told when fail() gives up on a device whose failure was being handled already (VirtioDevice.onGivenUp). */
  readonly givenUpListeners = new Listeners<[UvirtioError]>('device given up');
  private unwatchLost: (() => void) | undefined;

  constructor(
    /** The transport of the device driven now (after a reinit onto a target, the target's). */
    public t: VirtioTransport,
    /** What the device offered. */
    public offered: bigint,
    readonly features: bigint,
    readonly layout: Layout,
    readonly resetTimeoutMs: number,
    readonly requestTimeoutMs: number,
    preference: InterruptPreference,
    /** The transports this device holds (one driver per transport: transport-owner.ts); released by close(), reset(), a reinit onto a target. */
    readonly owner: TransportOwner,
  ) {
    this.interrupts = new InterruptRouter(preference, (v) => this.onInterrupt(v));
    this.watchLost();
  }

  /** The current transport's address. */
  get address(): string {
    return this.t.address;
  }
  /** Whether feature bit `feature` was negotiated. */
  has(feature: number): boolean {
    return hasFeature(this.features, feature);
  }

  /** Follows the current transport's loss (vhost-user back-end gone): the device needs a reset. */
  watchLost(): void {
    this.unwatchLost?.();
    this.unwatchLost = this.t.onLost?.((e) => this.markFailed(e));
  }
  /** Stops following the transport's loss (close). */
  unwatch(): void {
    this.unwatchLost?.();
  }

  /** See VirtioDevice.onFailure. */
  onFailure(listener: (e: UvirtioError) => void): () => void {
    return this.failureListeners.add(listener);
  }

  /** See VirtioDevice.markFailed. */
  markFailed(error: UvirtioError): void {
    if (this.phase === 'closed' || this.phase === 'failed') return;
    if (this.phase !== 'live') {
      this.failure ??= error;
      return;
    }
    this.failure = error;
    this.phase = 'needs-reset';
    this.failureListeners.emit(error);
  }

  /**
   * The driver gave up on the device (VirtioDevice.fail(); FAILED is written by the caller): it
   * goes to 'failed' with `error` as its failure, and — unless a failure was being handled already
   * (needs-reset) — onFailure listeners hear it, so that its owner (a QueueSet) resets it and
   * settles every pending request, as for a failure the device raised. Nothing for a device
   * closed, reset() or given up already.
   */
  giveUp(error: UvirtioError): void {
    if (this.phase === 'closed' || this.phase === 'reset' || this.phase === 'failed') return;
    const handled = this.phase === 'needs-reset';
    this.failure = error;
    this.phase = 'failed';
    if (!handled) this.failureListeners.emit(error);
    else this.givenUpListeners.emit(error);
  }

  private onInterrupt(vector: number): void {
    if (this.phase === 'closed' || this.phase === 'reset') return;
    for (const rec of this.queues.values()) if (rec.vector === vector) rec.onUsed?.();
    if (vector === 0) {
      // §4.1.4.5 / §2.1.2: a configuration interrupt also announces DEVICE_NEEDS_RESET.
      this.pollHealth();
      this.interrupts.configChanged();
    }
  }

  /** DEVICE_NEEDS_RESET (§2.1.2) or FAILED in device_status as an error, else null. */
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

  /** A live device that shows NEEDS_RESET or FAILED is marked failed. */
  pollHealth(): void {
    if (this.phase !== 'live') return;
    const e = this.healthError();
    if (e) this.markFailed(e);
  }

  /** Throws E_CLOSED once close() was called (an operation's steps check it after each wait). */
  ensureOpen(): void {
    if (this.phase === 'closed') {
      throw new UsageError('E_CLOSED', `${this.address}: the device is closed`, 'nothing more happens on a closed device; open it again');
    }
  }

  /** Throws E_CLOSED when the device is closed, else E_BAD_STATE (with the failure, if any) unless it is in `phase`. */
  expectPhase(phase: DevicePhase, what: string): void {
    if (this.phase !== phase) {
      this.ensureOpen();
      const why = this.failure ? ` (${this.failure.code}: ${this.failure.message})` : '';
      throw new UsageError('E_BAD_STATE', `${this.address}: cannot ${what} while the device is ${this.phase}${why}`);
    }
  }

  /**
   * Runs one of stop, reinit, resume, recover, reset, driverOk: never two at once (the second is refused with
   * E_BAD_STATE), and a close() meanwhile ends it with E_CLOSED at its next step.
   */
  async exclusive<T>(what: string, body: () => Promise<T>): Promise<T> {
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

  /** The stop/state facilities on the current transport, best first: the transport's, then quiesce. */
  facilities(t: VirtioTransport = this.t): StateFacility[] {
    return [...t.stateFacilities(this.features), quiesceFacility()];
  }

  /**
   * Programs a queue on the current transport: size, addresses and vector; its state through
   * `restorer` (a reinit that restores indices) or, when RING_STATE was negotiated, the initial
   * state through the ring-state registers (the proposal: written on every initialisation); then
   * queue_enable (virtio 1.2 §3.1.1 step 7).
   */
  programQueue(rec: QueueRecord, state: VqState, restorer?: StateFacility): void {
    const { vq, index } = rec;
    const ring = vq.splitIndices();
    rec.vector = this.t.configureQueue(index, { size: vq.size, addresses: vq.addresses, vector: this.interrupts.vectorFor(index), ...(ring ? { ring } : {}) });
    rec.notify = this.t.notifier(index);
    const writer = restorer ?? (this.has(Feature.RING_STATE) ? this.t.stateFacilities(this.features).find((f) => f.mechanism === 'ring-state') : undefined);
    writer?.restore(index, state);
    this.t.enableQueue(index);
  }

  /** Routes interrupts again and programs every queue; `plan` gives each queue's state (and what a restart forgot). */
  reprogram(plan: (rec: QueueRecord) => { state: VqState; restorer?: StateFacility; forgotten?: unknown[] }): void {
    this.t.disableInterrupts();
    this.interrupts.forget();
    this.interrupts.route(this.t);
    for (const q of [...this.queues.keys()].sort((a, b) => a - b)) {
      const rec = this.queues.get(q)!;
      const { state, restorer, forgotten } = plan(rec);
      if (forgotten && forgotten.length > 0) this.carried.set(q, [...(this.carried.get(q) ?? []), ...forgotten]);
      this.programQueue(rec, state, restorer);
    }
  }

  /** See VirtioDevice.setupQueue: creates the queue's record with its policy and programs it. */
  addQueue(index: number, options: QueueOptions): QueueRecord {
    options = optionsObject(options, 'queue options', QUEUE_OPTION_KEYS);
    checkValue(int(0, 65_535), index, 'queue index', 'queues are numbered from 0 (virtio 1.2 §2.6)');
    this.expectPhase('features-ok', 'set up a queue');
    if (this.queues.has(index)) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${index} is already set up`);
    // A queue the transport does not have is told as such before any size is looked at: a size
    // computed from its maximum (0) is no mistake of the caller's.
    const max = this.t.queueMaxSize(index);
    if (max === 0) {
      throw new DeviceError('E_QUEUE_UNAVAILABLE', `${this.address}: queue ${index} is not available (the transport has ${this.t.numQueues} queue(s); queue_size reads 0)`,
        'set up only queues below the transport\'s numQueues (`uvirtio info` lists the queues the device has); a device that announces more in its configuration is inconsistent');
    }
    if (options.size !== undefined) checkValue(int(1, 32_768), options.size, 'queue size', 'leave it out for the device\'s maximum');
    optionalValue(flag(), options.drains, 'queue option drains', 'true (chains complete by themselves), false (they wait on outside events), or leave it out');
    if (options.onUsed !== undefined && typeof options.onUsed !== 'function') {
      throw new UsageError('E_INVALID_ARGUMENT', `queue option onUsed must be a function, got ${shown(options.onUsed)}`, 'pass a function, or leave it out');
    }
    const threshold: unknown = options.indirectThreshold;
    if (threshold !== undefined && (typeof threshold !== 'number' || !(threshold >= 1) || (!Number.isInteger(threshold) && threshold !== Infinity))) {
      throw new UsageError('E_INVALID_ARGUMENT', `queue option indirectThreshold must be an integer from 1 (or Infinity: never indirect), got ${shown(threshold)}`,
        'the number of segments from which a chain goes through an indirect table; leave it out for 2');
    }
    const size = options.size ?? max;
    if (size > max) throw new UsageError('E_INVALID_ARGUMENT', `${this.address}: queue ${index} size ${size} exceeds the device's maximum ${max}`);
    const rec: QueueRecord = {
      index, vector: VIRTIO_MSI_NO_VECTOR, notify: () => undefined, drains: options.drains ?? true, onUsed: options.onUsed,
      vq: createVirtqueue<unknown>(this.layout, {
        index, size, dma: this.t.dma, checkSegments: true,
        features: { indirect: this.has(Feature.INDIRECT_DESC), eventIdx: this.has(Feature.EVENT_IDX) },
        notify: () => rec.notify(),
        ...(options.indirectThreshold !== undefined ? { indirectThreshold: options.indirectThreshold } : {}),
      }),
    };
    try {
      this.programQueue(rec, initialVqState(this.layout));
    } catch (e) {
      rec.vq.close();
      throw e;
    }
    this.queues.set(index, rec);
    return rec;
  }

  /**
   * See VirtioDevice.driverOk: the DRIVER_OK step of open (through VirtioDevice.driverOk's own
   * exclusive operation), reinit and recover (inside theirs). A close() while it waits for the
   * transport's flush ends it with E_CLOSED: a closed device is never made live.
   */
  async driverOk(): Promise<void> {
    this.expectPhase('features-ok', 'set DRIVER_OK');
    this.t.writeStatus(this.t.readStatus() | Status.DRIVER_OK);
    await this.t.flush?.(this.resetTimeoutMs);
    // Asked again after the wait: closed meanwhile (E_CLOSED), the device stays as close() left it.
    this.expectPhase('features-ok', 'set DRIVER_OK');
    const e = this.healthError();
    if (e) throw e;
    // Live only once the device took it: a failure before then is the caller's to handle (open,
    // reinit and recover roll back), not a live device's to settle.
    this.phase = 'live';
  }

  /** Hands back (and forgets) the tokens restarted rings forgot, by queue. */
  takeCarried(): Map<number, unknown[]> {
    const out = new Map(this.carried);
    this.carried.clear();
    return out;
  }
}

/**
 * Throws E_CLOSED (UsageError) when `t` was closed: a closed transport reads as a device with no
 * features and no status (or throws from an unmapped BAR), which would surface as a misleading
 * E_FEATURE_MISSING or E_SNAPSHOT_* later. `doing` names the operation for the message.
 */
export function checkTransportOpen(t: VirtioTransport, doing: string): void {
  if (t.closed === true) {
    throw new UsageError('E_CLOSED', `${t.address}: ${doing} needs an open transport, and this one was closed (a driver's close() closes its transport)`,
      'open the device again with openTransport(address) (or your transport\'s open function) and pass the new transport');
  }
}

/**
 * virtio 1.2 §3.1.1 steps 1–6, written once for open, reinit and recover: reset (bounded),
 * ACKNOWLEDGE, DRIVER, the features `choose` picks from those offered, FEATURES_OK, and the
 * read-back — a device that cannot work with the subset leaves FEATURES_OK clear
 * (E_FEATURES_NOT_OK). Rejects with the transport's codes (E_RESET_TIMEOUT, E_VHOST_*).
 */
export async function initialise(t: VirtioTransport, timeoutMs: number, choose: (offered: bigint) => bigint): Promise<void> {
  checkTransportOpen(t, 'initialising the device');
  await t.reset(timeoutMs);
  // Asked again after each wait: a transport closed meanwhile reads as a device with no features.
  checkTransportOpen(t, 'initialising the device');
  t.writeStatus(Status.ACKNOWLEDGE);
  t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  const features = choose(t.deviceFeatures());
  t.writeDriverFeatures(features);
  t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  await t.flush?.(timeoutMs);
  checkTransportOpen(t, 'initialising the device');
  if ((t.readStatus() & Status.FEATURES_OK) === 0) {
    throw new DeviceError('E_FEATURES_NOT_OK', `${t.address} refused features ${featureNames(features, t.deviceType)} (FEATURES_OK did not stick)`,
      'the device cannot work with this feature set; compare `uvirtio info` with the driver\'s feature policy, or use a device that offers the same features');
  }
}

/** Writes FAILED where the device can still be reached (virtio 1.2 §3.1.1: the driver gave up on it); never throws. */
export function markFailedStatus(t: VirtioTransport): void {
  try {
    t.writeStatus(t.readStatus() | Status.FAILED);
  } catch {
    // closed or gone: nothing left to tell it
  }
}

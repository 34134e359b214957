// Stop / virtqueue state / snapshot / reinit / resume of a VirtioDevice (docs/provisional-registers.md,
// docs/architecture.md#state-facilities): the device's part of a migration. The facilities come from one list —
// DeviceCore.facilities(): the transport's (ring-state, suspend; backend) then quiesce.
//
//   stop      pick a facility (best, or the one named) and bring the device to a quiet stop
//   vqState   each queue's state, checked against the driver's own rings (queue-checks.ts)
//   snapshot  everything reinit needs, as plain data (lib/virtio/snapshot/)
//   reinit    reset the device (or bring up a target sharing the memory), §3.1.1 with the same
//             features, each queue's state restored by the facility that stopped it — or the rings
//             restarted at 0 — and DRIVER_OK; a transaction (a refusal leaves the driver stopped)
//   resume    leave the stop without a reset, where the facility allows it

import { VIRTIO_MSI_NO_VECTOR, deviceTypeName, featureNames } from '../../spec/index.js';
import { DeviceError, TimeoutError, UsageError, UvirtioError } from '../../errors.js';
import { isInstance, thrownMessage } from '../../util/shown.js';
import type { OptionKeys } from '../../util/options.js';
import type { DmaAllocator } from '../../mem/dma.js';
import { SNAPSHOT_FORMAT, SNAPSHOT_VERSION, validateSnapshot, type DeviceSnapshot } from '../snapshot/index.js';
import type { Mechanism, StateContext, StateFacility, VirtioTransport, VqState } from '../../transport/types.js';
import { checkTransportOpen, initialise, markFailedStatus, type DeviceCore, type DevicePhase } from '../device-core.js';
import { initialVqState } from './quiesce.js';
import { queueStateProblem, type DriverView } from './queue-checks.js';
import { checkReinit } from './reinit-checks.js';
import { loadExtraState, saveExtraState } from './device-state.js';

/** See VirtioDevice.stop. */
export interface StopOptions {
  /** 'auto' (default) picks the best the device offers: ring-state, backend, suspend, then quiesce. */
  mechanism?: Mechanism | 'auto';
  /**
   * Bound on the whole stop, in ms (default 5000): the driver's preparation, then the wait for STOP /
   * SUSPEND to show or for in-flight requests to drain. The vhost-user 'backend' mechanism ends
   * within it plus STOP_REPLY_MARGIN_MS (500 ms) for the last GET_VRING_BASE answer and drain.
   */
  timeoutMs?: number;
}

/** StopOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
export const STOP_OPTION_KEYS: OptionKeys<StopOptions> = { mechanism: true, timeoutMs: true };

/**
 * Work a driver must do before its device stops (a console lets the device fill its posted receive
 * buffers, then closes its ports), run by VirtioDevice.stop inside its one-operation lock once the
 * stop was accepted. `deadline` is the stop's bound (ms since the epoch: start + timeoutMs); the
 * device's own wait gets what the preparation leaves. It may reject with a UvirtioError to refuse
 * the stop (the device is then not asked to stop); anything else it throws or rejects with fails
 * the stop with E_CALLBACK_THREW, what it threw as the cause (the device not asked either). One still running at the deadline, or one that
 * leaves no time, fails the stop (E_STOP_TIMEOUT; the device was not asked to stop), and a close()
 * meanwhile ends it (E_CLOSED). Whenever the stop ends without asking the device — those two, a
 * device that failed meanwhile, or the preparation's own rejection — `signal` is aborted with the
 * stop's error (after the stop has settled on it), so a preparation checks `signal.aborted` after
 * each wait before it changes anything, and may end its waits early on the signal's `abort` event.
 */
export type StopPreparation = (deadline: number, signal: AbortSignal) => Promise<void>;

/** E_STOP_TIMEOUT for a preparation that took the whole bound: the device was not asked to stop. */
function preparationTimedOut(d: DeviceCore, timeoutMs: number): TimeoutError {
  return new TimeoutError('E_STOP_TIMEOUT', `${d.address}: the driver's preparation for the stop did not finish within the stop's ${timeoutMs} ms`,
    'the device was not asked to stop and runs on; retry with a larger timeoutMs');
}

/**
 * What a preparation threw or rejected with, as the stop's error: a UvirtioError as it is (a driver
 * refusing the stop), anything else E_CALLBACK_THREW with it as the cause (a driver's own fault).
 */
function preparationFailed(d: DeviceCore, thrown: unknown): UvirtioError {
  if (isInstance(thrown, UvirtioError)) return thrown;
  return new UvirtioError('E_CALLBACK_THREW', `${d.address}: the driver's preparation for the stop failed: ${thrownMessage(thrown)}`,
    'the device was not asked to stop and runs on; fix the preparation, or reject with a UvirtioError to refuse a stop', { cause: thrown });
}

/** Waits for a stop's preparation until `deadline`; a close() of the device ends the wait with E_CLOSED. */
async function awaitPreparation(d: DeviceCore, prepared: Promise<void>, deadline: number, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  try {
    await Promise.race([
      prepared.catch((e: unknown) => { throw preparationFailed(d, e); }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(preparationTimedOut(d, timeoutMs)), Math.max(0, deadline - Date.now()));
      }),
      new Promise<never>((_, reject) => {
        unsubscribe = d.closeListeners.add(() => reject(new UsageError('E_CLOSED', `${d.address}: the device was closed during the stop`)));
      }),
    ]);
  } finally {
    clearTimeout(timer);
    unsubscribe?.();
  }
}

/** See VirtioDevice.reinit. */
export interface ReinitOptions {
  /** Another device of the same type, sharing this device's DMA memory, to bring up with the state (default: this device). */
  target?: VirtioTransport;
  /** Bound on each reset and status change of the re-initialisation, in ms (default: resetTimeoutMs). */
  timeoutMs?: number;
}

/** ReinitOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
export const REINIT_OPTION_KEYS: OptionKeys<ReinitOptions> = { target: true, timeoutMs: true };

/** The stop-side bookkeeping of one device (internal: VirtioDevice delegates to it). */
export class Migration {
  private facility: StateFacility | null = null;
  /** Each queue as the driver left it at the stop, taken when first needed (queue-checks.ts). */
  private viewsAtStop: Map<number, DriverView> | null = null;
  /**
   * A reinit attempt reset the stopped device (onto another device: the source let go of the
   * rings; a refused one: the target was reset): its queue state is only in the snapshot now.
   */
  private sourceReleased = false;
  /** The snapshot the last reinit attempt was given (snapshot() returns it once the device was reset). */
  private attempted: DeviceSnapshot | null = null;

  constructor(private readonly d: DeviceCore, private readonly dma: DmaAllocator) {}

  /** The mechanism of the last stop, or null. */
  get mechanism(): Mechanism | null {
    return this.facility?.mechanism ?? null;
  }

  /** Whether the device is stopped and not in the middle of an operation (stop() is then a no-op). */
  get settled(): boolean {
    return this.d.phase === 'stopped' && this.facility !== null && !this.d.operation;
  }

  private context(): StateContext {
    const d = this.d;
    const live = d.phase;
    const queues = [...d.queues.keys()].sort((a, b) => a - b);
    return {
      address: d.address, layout: d.layout, queues,
      inFlight: (q) => d.queues.get(q)?.vq.inFlight ?? 0,
      drains: (q) => d.queues.get(q)?.drains ?? true,
      ringDerived: (q) => {
        const rec = d.queues.get(q);
        if (!rec) return initialVqState(d.layout);
        const s = rec.vq.exportState();
        return { avail: s.nextAvail, used: s.lastUsed };
      },
      failure: () => {
        if (d.phase === 'closed') return new UsageError('E_CLOSED', `${d.address}: the device was closed during the stop`);
        return live === 'live' && d.phase === 'needs-reset' ? d.failure : null;
      },
    };
  }

  /** See VirtioDevice.stop. */
  async stop(options: StopOptions, prepare?: StopPreparation): Promise<Mechanism> {
    const d = this.d;
    // A device that failed says why (E_DEVICE_NEEDS_RESET, E_DEVICE_UNRESPONSIVE, …): the caller's
    // next step is recover(), not a change of its own calls, which E_BAD_STATE would suggest.
    if (d.phase === 'needs-reset' && d.failure) throw d.failure;
    d.expectPhase('live', 'stop');
    const offered = d.facilities();
    const names = offered.map((f) => f.mechanism);
    const wanted = options.mechanism ?? 'auto';
    const facility = wanted === 'auto' ? offered[0]! : offered.find((f) => f.mechanism === wanted);
    if (!facility) {
      throw new DeviceError('E_STATE_UNSUPPORTED', `${d.address} does not support the ${wanted} mechanism (it supports ${names.join(', ')})`,
        wanted === 'ring-state' ? 'the device must offer VIRTIO_F_RING_STATE' : wanted === 'suspend' ? 'the device must offer VIRTIO_F_SUSPEND' : 'use --mechanism auto');
    }
    // Accepted: the preparation runs now (nothing was touched for a refusal above), then the device
    // stops within what is left of the one bound.
    let timeoutMs = options.timeoutMs ?? 5000;
    if (prepare) {
      const deadline = Date.now() + timeoutMs;
      const controller = new AbortController();
      try {
        let prepared: Promise<void>;
        try {
          prepared = Promise.resolve(prepare(deadline, controller.signal));
        } catch (thrown) {
          throw preparationFailed(d, thrown);
        }
        await awaitPreparation(d, prepared, deadline, timeoutMs);
        d.ensureOpen();
        if (d.phase !== 'live') throw d.failure ?? new UsageError('E_BAD_STATE', `${d.address}: the device is ${d.phase}`);
        if (Date.now() >= deadline) throw preparationTimedOut(d, timeoutMs);
      } catch (e) {
        // The stop ends here, the device not asked: the preparation's signal says so, whatever the
        // cause. Aborted only now, once the stop has settled on its error, so a preparation that
        // rejects from its abort listener cannot put its own error in the stop's place.
        controller.abort(e);
        throw e;
      }
      timeoutMs = deadline - Date.now();
    }
    try {
      await facility.stop(this.context(), timeoutMs);
    } catch (e) {
      d.ensureOpen();
      // STOP (one-way) or SUSPEND was asked for and never showed, or the device stopped with state
      // its rings rule out: it may be stopping for ever and complete nothing more. It is failed
      // (reset, its requests rejected; recover()).
      const code = (e as UvirtioError).code;
      if ((code === 'E_STOP_TIMEOUT' || code === 'E_SUSPEND_TIMEOUT' || code === 'E_DEVICE_BAD_STATE') && facility.mechanism !== 'quiesce') d.markFailed(e as UvirtioError);
      throw e;
    }
    d.ensureOpen();
    // The device may have failed while it was being stopped (a watchdog, a lost back-end).
    if (d.phase !== 'live') throw d.failure ?? new UsageError('E_BAD_STATE', `${d.address}: the device is ${d.phase}`);
    this.facility = facility;
    d.phase = 'stopped';
    this.viewsAtStop = null;
    this.sourceReleased = false;
    return facility.mechanism;
  }

  /** Each queue as the driver left it at this stop, taken the first time it is needed (every used element taken by then). */
  private stopViews(): Map<number, DriverView> {
    if (!this.viewsAtStop) {
      this.viewsAtStop = new Map();
      for (const [q, { vq }] of this.d.queues) {
        const s = vq.exportState();
        this.viewsAtStop.set(q, { layout: this.d.layout, size: vq.size, nextAvail: s.nextAvail, lastUsed: s.lastUsed, inFlight: vq.inFlight });
      }
    }
    return this.viewsAtStop;
  }

  /**
   * Whether queue `q` may gain used elements while the device is stopped without anything being
   * wrong: a quiesce leaves the device running, and a queue whose chains are not waited for (a
   * receive queue, drains: false) goes on being filled by its peer until the reset. Those
   * completions are dropped by the reset (as a real NIC drops what arrives while it restarts);
   * the state is the driver's view at the stop (what it had taken by its first snapshot), and the
   * buffers are posted again after the reinit.
   */
  private stillFilled(q: number): boolean {
    return this.facility?.mechanism === 'quiesce' && !(this.d.queues.get(q)?.drains ?? true);
  }

  /** See VirtioDevice.vqState. */
  vqState(q: number): VqState {
    const d = this.d;
    d.ensureOpen();
    if (this.sourceReleased) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${d.address}: the device was reset by a reinit attempt; its queue state is in the snapshot that reinit was given`,
        'snapshot() returns that snapshot; reinit from it (on this device or another)');
    }
    if (d.phase !== 'stopped' || !this.facility) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${d.address}: queue state can only be read while the device is stopped (it is ${d.phase})`,
        'call stop() first; a running device\'s state registers do not describe a consistent point');
    }
    const rec = d.queues.get(q);
    if (!rec) throw new UsageError('E_BAD_STATE', `${d.address}: queue ${q} is not set up`);
    const vq = rec.vq;
    // A ring the device broke (even after the stop) has no state worth carrying anywhere.
    if (vq.broken) throw vq.broken;
    // A queue the running device goes on filling is described as it was at the stop (stopViews):
    // every snapshot of this stop then says the same, and reinit checks it exactly.
    if (this.stillFilled(q)) {
      const view = this.stopViews().get(q)!;
      return { avail: view.nextAvail, used: view.lastUsed };
    }
    if (vq.usedPending()) {
      throw new UsageError('E_BAD_STATE', `${d.address}: queue ${q} has used elements the driver has not taken yet`,
        'take them first (RequestQueue.processUsed(), Virtqueue.popUsed()): the state is checked against what the driver consumed; QueueSet.stop() does this');
    }
    const f = this.facility;
    // State the device reports needs the device: a closed transport reads as zeros, not as its state.
    if (!f.ringDerived) checkTransportOpen(d.t, 'reading the queue state from the device');
    const state = f.read(this.context(), q);
    if (!f.ringDerived) {
      const problem = queueStateProblem(this.stopViews().get(q)!, state, { mayHold: f.deviceState !== undefined });
      if (problem) {
        throw new DeviceError('E_DEVICE_BAD_STATE', `${d.address}: queue ${q} reports impossible state: ${problem}`,
          `the device's ${f.mechanism} state disagrees with the rings the driver keeps; a reinit from it would lose or repeat requests — reset the device, or stop with --mechanism quiesce`);
      }
    }
    return state;
  }

  /** See VirtioDevice.snapshot. */
  snapshot(): DeviceSnapshot {
    const d = this.d;
    d.ensureOpen();
    if (d.phase !== 'stopped' || !this.facility) {
      throw new DeviceError('E_STATE_NOT_STOPPED', `${d.address}: a snapshot is taken while the device is stopped (it is ${d.phase})`,
        'call stop() first');
    }
    // A reinit attempt reset the device: its state is the snapshot that attempt was given.
    if (this.sourceReleased && this.attempted) return this.attempted;
    const states = [...d.queues.keys()].sort((a, b) => a - b).map((q) => ({ q, s: this.vqState(q), rec: d.queues.get(q)! }));
    const mailbox = this.facility.deviceState;
    return validateSnapshot({
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      createdAt: new Date().toISOString(),
      source: d.address,
      deviceType: d.t.deviceType,
      deviceTypeName: deviceTypeName(d.t.deviceType),
      mechanism: this.facility.mechanism,
      layout: d.layout,
      features: hex(d.features),
      featureNames: featureNames(d.features, d.t.deviceType),
      queues: states.map(({ q, s, rec: { vq, vector } }) => ({
        index: q, size: vq.size, vector,
        desc: hex(vq.addresses.desc), driver: hex(vq.addresses.driver), device: hex(vq.addresses.device),
        availState: s.avail, usedState: s.used, inFlight: this.stillFilled(q) ? this.stopViews().get(q)!.inFlight : vq.inFlight,
      })),
      // Not copied: a generic read of the device configuration would read multi-byte fields byte by
      // byte and fields of features never offered, which virtio 1.2 §4.1.3.1 and §2.5.1 forbid;
      // reinit never needs it (the target's own configuration is the one that counts).
      config: '',
      deviceState: mailbox ? saveExtraState(this.dma, mailbox) : null,
    });
  }

  /** See VirtioDevice.reinit. */
  async reinit(snapshot: DeviceSnapshot, options: ReinitOptions): Promise<Map<number, unknown[]>> {
    const d = this.d;
    const snap = validateSnapshot(snapshot);
    d.expectPhase('stopped', 'reinit');
    const target = options.target ?? d.t;
    checkTransportOpen(target, 'reinit onto it');
    const offered = target.deviceFeatures();
    // The target's own facility for the snapshot's mechanism says whether it restores indices.
    const restorer = d.facilities(target).find((f) => f.mechanism === snap.mechanism);
    const queues = new Map([...d.queues].map(([q, rec]) => [q, rec.vq]));
    checkReinit(snap, { deviceType: d.t.deviceType, features: d.features, layout: d.layout, queues, views: this.stopViews(), dma: this.dma }, target, offered, restorer);
    const timeoutMs = options.timeoutMs ?? d.resetTimeoutMs;
    const source = d.t;
    // A target another VirtioDevice drives is refused before anything is touched (it would be
    // reset under its driver); the claim is let go again if this attempt is rolled back.
    if (target !== source) d.owner.claim(target, 'a reinit onto it');
    try {
      return await this.reinitOnto(snap, target, source, offered, restorer, timeoutMs);
    } catch (e) {
      if (target !== d.t) d.owner.release(target);
      throw e;
    }
  }

  private async reinitOnto(snap: DeviceSnapshot, target: VirtioTransport, source: VirtioTransport, offered: bigint,
    restorer: StateFacility | undefined, timeoutMs: number): Promise<Map<number, unknown[]>> {
    const d = this.d;
    const restores = restorer?.restoresIndices ?? false;
    if (target !== source && !this.sourceReleased) {
      // The source must let go of the rings before the target takes them: a stopped, suspended or
      // quiesced source still has DRIVER_OK (or could resume) and the ring addresses. A source that
      // cannot be reset (gone, wedged) does not hold up the migration; it is failed instead.
      source.disableInterrupts();
      await source.reset(timeoutMs).catch(() => markFailedStatus(source));
      this.sourceReleased = true;
      d.ensureOpen();
    }
    this.attempted = snap;
    d.t = target;
    let stateBuf: { free(): void } | null = null;
    try {
      await initialise(target, timeoutMs, () => BigInt(snap.features));
      const facility = restores ? restorer : undefined;
      d.reprogram((rec) => {
        const sq = snap.queues.find((x) => x.index === rec.index)!;
        return facility ? { state: { avail: sq.availState, used: sq.usedState }, restorer: facility } : { state: initialVqState(d.layout), forgotten: rec.vq.reset() };
      });
      if (snap.deviceState && facility?.deviceState) stateBuf = loadExtraState(this.dma, facility.deviceState, snap.deviceState.bytes);
      d.ensureOpen();
      d.phase = 'features-ok';
      await d.driverOk();
      d.ensureOpen();
    } catch (e) {
      await this.rollBack(source, target, timeoutMs);
      d.ensureOpen(); // closed under it: E_CLOSED, not what the closed target made the steps throw
      throw e;
    } finally {
      stateBuf?.free();
    }
    if (target !== source) {
      d.offered = offered;
      d.watchLost();
      d.owner.release(source); // reset for the reinit: another VirtioDevice may open it now
    }
    this.facility = null;
    this.viewsAtStop = null;
    this.sourceReleased = false;
    this.attempted = null;
    d.failure = null;
    return d.takeCarried();
  }

  /**
   * A reinit attempt failed: the target lets go of the rings, and the driver is stopped again on
   * the source, ready for another attempt. If the target completed requests before it failed, a
   * retry would do them twice: the device goes to `failed` instead.
   */
  private async rollBack(source: VirtioTransport, target: VirtioTransport, timeoutMs: number): Promise<void> {
    const d = this.d;
    if (d.phase === 'closed') return; // close() resets and releases everything itself
    try {
      target.disableInterrupts();
    } catch {
      // a transport that cannot even do this is reset (or failed) below
    }
    await target.reset(timeoutMs).catch(() => markFailedStatus(target));
    d.t = source;
    d.interrupts.forget();
    for (const rec of d.queues.values()) rec.vector = VIRTIO_MSI_NO_VECTOR;
    this.sourceReleased = true; // the target was reset: on the source too when they are one device
    if ((d.phase as DevicePhase) === 'closed') return; // closed during the reset
    const worked = [...d.queues].some(([q, rec]) => rec.vq.usedPending() && !this.stillFilled(q));
    d.phase = worked ? 'failed' : 'stopped';
  }

  /** See VirtioDevice.resume. */
  async resume(timeoutMs: number): Promise<void> {
    const d = this.d;
    d.expectPhase('stopped', 'resume');
    checkTransportOpen(d.t, 'resuming the device');
    const f = this.facility!;
    if (!f.resume || this.sourceReleased) {
      throw new DeviceError('E_STATE_UNSUPPORTED', `${d.address}: ${f.mechanism} cannot be resumed${this.sourceReleased ? ' (the device was reset for a reinit)' : ': STOP is one-way'}`,
        'reinit the device (the same one or another) from its snapshot');
    }
    try {
      await f.resume(this.context(), timeoutMs);
    } catch (e) {
      d.ensureOpen();
      // The device set DEVICE_NEEDS_RESET (or FAILED) while stopped (virtio 1.2 §2.1.2): it is
      // failed now (needs-reset) so that recover() is accepted, as for the quiesce path below.
      let health: UvirtioError | null = null;
      try {
        health = d.healthError();
      } catch {
        // a transport that cannot read its status: the facility's own error stands
      }
      if (health) {
        this.failStopped(health);
        throw health;
      }
      throw e;
    }
    d.ensureOpen();
    // A device that set DEVICE_NEEDS_RESET or FAILED while it was stopped (a quiesce never told it
    // anything) is not reported live: virtio 1.2 §2.1.2, the driver must notice. It is failed
    // (needs-reset: recover() brings it back) and the resume rejects with its error.
    const health = d.healthError();
    if (health) {
      this.failStopped(health);
      throw health;
    }
    this.facility = null;
    d.phase = 'live';
    // A fault seen while it was stopped (a ring it broke while draining, a lost back-end) is
    // acted on now that the device is live again.
    const seen = d.failure;
    d.failure = null;
    if (seen) d.markFailed(seen);
  }

  /** A stopped device found failed on resume: it leaves the stop for needs-reset (its listeners told), failed with `error`. */
  private failStopped(error: UvirtioError): void {
    const d = this.d;
    this.facility = null;
    d.phase = 'live';
    d.failure = null;
    d.markFailed(error);
  }
}

function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

// The 'backend' stop/state facility of the vhost-vdpa transport: the Linux kernel's own
// implementation of suspend + virtqueue state (include/uapi/linux/vhost.h, drivers/vhost/vdpa.c).
//   stop     VHOST_VDPA_SUSPEND — the parent processes no more descriptors and keeps each ring's
//            state — then VHOST_GET_VRING_BASE per queue. Refused (E_STATE_UNSUPPORTED) when the
//            parent does not offer VHOST_BACKEND_F_SUSPEND.
//   state    split: GET_VRING_BASE's `num` is the next available index the device will fetch; the
//            used index is used->idx in ring memory. vhost-vdpa cannot hand over requests the
//            device fetched and has not completed (a split ring's state is one index; vdpa_sim's
//            vdpasim_queue_ready starts a ring with last_used_idx = last_avail_idx), so the stop
//            waits, bounded, until used->idx reaches that index and fails with E_STOP_TIMEOUT
//            otherwise. packed: `num` carries last_avail_idx | wrap << 15 in bits 0–15 and
//            last_used_idx | wrap << 15 in bits 16–31 (drivers/vhost/vhost.c vhost_vring_ioctl).
//   restore  VHOST_SET_VRING_BASE between the ring's set-up and DRIVER_OK (the kernel refuses it on
//            a running, unsuspended device with EINVAL).
//   resume   VHOST_VDPA_RESUME, where the parent offers VHOST_BACKEND_F_RESUME; then a kick per
//            queue, so buffers made available while suspended are seen.

import { DeviceError, TimeoutError, UsageError } from '../../errors.js';
import { Errno, SysError } from '../../sys/errno.js';
import { backoff } from '../../util/backoff.js';
import type { SplitRingIndices, StateContext, StateFacility, VqState } from '../state.js';
import type { VdpaFd } from './device.js';
import { decodeVringBase } from './uapi.js';

/** What the facility needs of the transport. */
export interface VdpaRings {
  readonly address: string;
  /** The open device. */
  fd(): VdpaFd;
  /** Whether VHOST_BACKEND_F_SUSPEND / _RESUME were negotiated. */
  readonly canSuspend: boolean;
  readonly canResume: boolean;
  /** Whether VIRTIO_F_RING_PACKED was negotiated. */
  packed(): boolean;
  /** A configured split ring's indices in memory (used->idx), if any. */
  ring(q: number): SplitRingIndices | undefined;
  /** Sets queue q's base for its next start (SET_VRING_BASE now; the ring is configured, not started). */
  setBase(q: number, state: VqState): void;
  /** Kicks every enabled queue (after a resume). */
  kickAll(): void;
}

/** What one stop measured, for reports and benchmarks. */
export interface VdpaStopObservation {
  /** How long VHOST_VDPA_SUSPEND took, in ms. */
  suspendMs: number;
  /** How long the wait for fetched requests to complete took after it (split rings), in ms. */
  drainMs: number;
}

/** The hint for a parent without SUSPEND. */
export const NO_SUSPEND_HINT = 'the vDPA parent does not offer VHOST_BACKEND_F_SUSPEND (it needs Linux ≥ 6.3 and a parent driver with suspend); stop with --mechanism quiesce instead';

/** The facility's bookkeeping plus the StateFacility methods (see the top of this file). */
export class VdpaSuspendFacility implements StateFacility {
  /** Reported as 'backend': the vhost back-end's own ring state (GET/SET_VRING_BASE), as for vhost-user. */
  readonly mechanism = 'backend' as const;
  /** SET_VRING_BASE restores the device's indices. */
  readonly restoresIndices = true;
  /** The state is the kernel's report (GET_VRING_BASE), checked against the rings. */
  readonly ringDerived = false;
  /** The last stop's timings. */
  lastStop: VdpaStopObservation | null = null;
  private readonly last = new Map<number, VqState>();
  /** Present only where the parent offers RESUME (VirtioDevice.resume refuses otherwise). */
  readonly resume?: (ctx: StateContext, timeoutMs: number) => Promise<void>;

  constructor(private readonly t: VdpaRings) {
    if (t.canResume) {
      this.resume = async () => {
        this.call('VHOST_VDPA_RESUME', () => t.fd().resume());
        t.kickAll();
      };
    }
  }

  private call(name: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.EOPNOTSUPP) {
        throw new DeviceError('E_STATE_UNSUPPORTED', `${this.t.address}: the parent refused ${name} (EOPNOTSUPP)`, NO_SUSPEND_HINT, { cause: e });
      }
      throw e;
    }
  }

  /**
   * SUSPEND, then each queue's GET_VRING_BASE; for a split ring, waits (bounded by timeoutMs) until
   * used->idx reaches the reported index. Rejects E_STATE_UNSUPPORTED (no SUSPEND), E_STOP_TIMEOUT
   * (fetched requests did not complete), E_DEVICE_BAD_STATE (an index beyond what the driver made
   * available, or behind what the device completed: at once), or the failure ctx reports.
   */
  async stop(ctx: StateContext, timeoutMs: number): Promise<void> {
    const t = this.t;
    if (!t.canSuspend) throw new DeviceError('E_STATE_UNSUPPORTED', `${t.address}: the device cannot be suspended`, NO_SUSPEND_HINT);
    this.last.clear();
    const t0 = performance.now();
    this.call('VHOST_VDPA_SUSPEND', () => t.fd().suspend());
    const suspendMs = performance.now() - t0;
    const deadline = Date.now() + timeoutMs;
    const packed = t.packed();
    for (const q of ctx.queues) {
      const base = decodeVringBase(t.fd().vringBase(q), packed);
      if (packed) {
        this.last.set(q, { avail: base.avail, used: base.used! });
        continue;
      }
      const ring = t.ring(q);
      const usedIdx = (): number => ring ? ring.usedIdx() : ctx.ringDerived(q).used;
      // The device's next available index lies between what it completed and what the driver
      // published (virtio 1.2 §2.7.6, §2.7.8): anything else no wait can make true.
      const published = ring ? ring.availIdx() : ctx.ringDerived(q).avail;
      const used = usedIdx();
      if (((base.avail - used) & 0xffff) > ((published - used) & 0xffff)) {
        throw new DeviceError('E_DEVICE_BAD_STATE',
          `${t.address}: queue ${q}: VHOST_GET_VRING_BASE answered available index ${base.avail}, but the driver made available up to ${published} and the device completed up to ${used} (used->idx)`,
          'the device reports ring state that cannot be true; the device was failed — no snapshot can be taken from it: recover() (or reopen) it');
      }
      for (let spins = 0; ((base.avail - usedIdx()) & 0xffff) !== 0; spins++) {
        const failed = ctx.failure();
        if (failed) throw failed;
        if (Date.now() > deadline) {
          throw new TimeoutError('E_STOP_TIMEOUT',
            `${t.address}: queue ${q} suspended at available index ${base.avail}, but ${(base.avail - usedIdx()) & 0xffff} fetched request(s) did not complete within ${timeoutMs} ms (used->idx ${usedIdx()})`,
            'a split ring\'s vhost-vdpa state cannot carry unfinished requests; retry with a longer stop timeout, or resume the device');
        }
        await backoff(spins);
      }
      this.last.set(q, { avail: base.avail, used: usedIdx() });
    }
    this.lastStop = { suspendMs, drainMs: performance.now() - t0 - suspendMs };
  }

  /** The state GET_VRING_BASE reported for queue q at the last stop. Throws E_STATE_NOT_STOPPED before one. */
  read(_ctx: StateContext, q: number): VqState {
    const s = this.last.get(q);
    if (!s) throw new DeviceError('E_STATE_NOT_STOPPED', `${this.t.address}: queue ${q} has not been stopped (VHOST_VDPA_SUSPEND + GET_VRING_BASE)`,
      'stop() the device first (mechanism backend); its state is read only while it is stopped');
    return s;
  }

  /**
   * SET_VRING_BASE for queue q's next start (between its set-up and DRIVER_OK). A split state whose
   * used index differs from its available index is refused with E_STATE_REFUSED: vhost-vdpa cannot
   * tell a device about requests fetched and not completed.
   */
  restore(q: number, s: VqState): void {
    if (!this.t.packed() && ((s.avail - s.used) & 0xffff) !== 0) {
      throw new DeviceError('E_STATE_REFUSED', `${this.t.address}: queue ${q}'s state (avail ${s.avail}, used ${s.used}) has ${(s.avail - s.used) & 0xffff} unfinished request(s); vhost-vdpa restores one index per split ring`,
        'take the snapshot from a stop that completed every fetched request (the vhost-vdpa and vhost-user stops do)');
    }
    if (!Number.isInteger(s.avail) || !Number.isInteger(s.used)) throw new UsageError('E_INVALID_ARGUMENT', `${this.t.address}: queue ${q}'s state is not integers`);
    this.t.setBase(q, s);
  }
}

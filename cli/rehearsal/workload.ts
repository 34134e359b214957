// What a rehearsal or a session drives: a driver (stop / snapshot / reinit / resume / close) plus
// traffic whose every request can be checked afterwards for being done exactly once with the right
// data. The CLI goes through this and the driver only — never to the device or the transport
// underneath (the session `resume` once called the device's resume() and left the driver's
// request queues paused).

import type { ReinitOptions, StopOptions } from '../../lib/virtio/device.js';
import { DeviceType, deviceTypeName } from '../../lib/spec/index.js';
import { UsageError, type UvirtioError } from '../../lib/errors.js';
import type { DeviceSnapshot, Mechanism } from '../../lib/virtio/snapshot/index.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import type { StatefulDriver } from '../../drivers/stateful.js';

export interface Verdict {
  lost: number;
  duplicated: number;
  corrupted: number;
}

export type WorkloadKind = 'blk' | 'net';

/** The device a workload drives now (after a reinit onto a target, the target). */
export interface Driving {
  address: string;
  phase: string;
  layout: Layout;
  /** The mechanism of the stop in effect, or null while live. */
  mechanism: Mechanism | null;
}

export interface Workload {
  readonly kind: WorkloadKind;
  /** Requests issued and requests that completed (and were checked on completion). */
  readonly submitted: number;
  readonly completed: number;
  /** Requests verify() made the device carry out (beyond the traffic), for counting duplicates. */
  readonly verifyRequests: number;
  /** Issues one request; resolves when it completed and was checked. Never rejects for a check failure (it is counted). */
  issue(): Promise<void>;
  stop(options: StopOptions): Promise<Mechanism>;
  snapshot(): DeviceSnapshot;
  reinit(snapshot: DeviceSnapshot, options: ReinitOptions): Promise<void>;
  /** Leaves a SUSPEND (or quiesce) stop without a reset; held requests go on. */
  resume(): Promise<void>;
  driving(): Driving;
  /** Why the device driven now failed (its phase needs-reset or failed), or null. */
  failure(): UvirtioError | null;
  /** After all traffic completed: checks everything left to check. */
  verify(): Promise<Verdict>;
  /** Problems counted so far (during traffic). */
  readonly problems: Verdict;
  /** The most requests the workload can keep in flight and still check each (blk: one per block), if bounded. */
  readonly maxInflight?: number;
  /** Resets the device and releases it; requests still pending are rejected with `reason` (default E_CLOSED). */
  close(reason?: UvirtioError): Promise<void>;
}

/** The workload for a device type: blk and net have one; anything else is refused. */
export function workloadKindFor(deviceType: number, address: string): WorkloadKind {
  if (deviceType === DeviceType.BLK) return 'blk';
  if (deviceType === DeviceType.NET) return 'net';
  throw new UsageError('E_INVALID_ARGUMENT', `${address} is a ${deviceTypeName(deviceType)} device; rehearsals and sessions drive blk and net devices`,
    'name a blk or net device (sim:blk, sim:net, vfio:BDF of one, vhost-user:SOCKET)');
}

/** The driver-facing half every workload shares: each call goes to the driver. */
export abstract class DriverWorkload {
  constructor(protected readonly driver: StatefulDriver) {}
  stop(options: StopOptions): Promise<Mechanism> {
    return this.driver.stop(options);
  }
  snapshot(): DeviceSnapshot {
    return this.driver.snapshot();
  }
  reinit(snapshot: DeviceSnapshot, options: ReinitOptions): Promise<void> {
    return this.driver.reinit(snapshot, options);
  }
  resume(): Promise<void> {
    return this.driver.resume();
  }
  driving(): Driving {
    const d = this.driver.device;
    return { address: d.address, phase: d.phase, layout: d.layout, mechanism: d.phase === 'stopped' ? d.mechanism : null };
  }
  failure(): UvirtioError | null {
    return this.driver.device.failure;
  }
  close(reason?: UvirtioError): Promise<void> {
    return this.driver.close(reason);
  }
}

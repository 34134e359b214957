// What a rehearsal drives: a driver (stop / snapshot / reinit) plus traffic whose every request
// can be checked afterwards for being done exactly once with the right data.

import type { ReinitOptions, StopOptions, VirtioDevice } from '../../lib/virtio/device.js';
import type { DeviceSnapshot, Mechanism } from '../../lib/virtio/snapshot.js';
import type { StatefulDriver } from '../../drivers/stateful.js';

export interface Verdict {
  lost: number;
  duplicated: number;
  corrupted: number;
}

export interface Workload {
  readonly kind: 'blk' | 'net';
  readonly device: VirtioDevice;
  /** Requests issued and requests that completed (and were checked on completion). */
  readonly submitted: number;
  readonly completed: number;
  /** Issues one request; resolves when it completed and was checked. Never rejects for a check failure (it is counted). */
  issue(): Promise<void>;
  stop(options: StopOptions): Promise<Mechanism>;
  snapshot(): DeviceSnapshot;
  reinit(snapshot: DeviceSnapshot, options: ReinitOptions): Promise<void>;
  /** After all traffic completed: checks everything left to check. */
  verify(): Promise<Verdict>;
  /** Problems counted so far (during traffic). */
  readonly problems: Verdict;
  close(): Promise<void>;
}

/** The driver-facing half every workload shares: stop, snapshot, reinit and close go to the driver. */
export abstract class DriverWorkload {
  constructor(protected readonly driver: StatefulDriver) {}
  get device(): VirtioDevice {
    return this.driver.device;
  }
  stop(options: StopOptions): Promise<Mechanism> {
    return this.driver.stop(options);
  }
  snapshot(): DeviceSnapshot {
    return this.driver.snapshot();
  }
  reinit(snapshot: DeviceSnapshot, options: ReinitOptions): Promise<void> {
    return this.driver.reinit(snapshot, options);
  }
  close(): Promise<void> {
    return this.driver.close();
  }
}

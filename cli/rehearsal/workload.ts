// What a rehearsal drives: a driver (stop / snapshot / reinit) plus traffic whose every request
// can be checked afterwards for being done exactly once with the right data.

import type { ReinitOptions, StopOptions } from '../../lib/virtio/device.js';
import type { DeviceSnapshot, Mechanism } from '../../lib/virtio/snapshot.js';
import type { VirtioDevice } from '../../lib/virtio/device.js';

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

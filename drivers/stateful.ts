// What every driver shares for stop / state / reinit: its VirtioDevice and the QueueSet that
// pauses, stops, re-initialises and resumes all of its queues together.

import type { VirtioDevice, ReinitOptions, StopOptions } from '../lib/virtio/device.js';
import type { QueueSet } from '../lib/virtio/queue-set.js';
import type { DeviceSnapshot, Mechanism } from '../lib/virtio/snapshot.js';

export abstract class StatefulDriver {
  protected constructor(readonly device: VirtioDevice, protected readonly queues: QueueSet) {}

  /** Holds new requests back and stops the device with the best (or the named) mechanism. */
  stop(options: StopOptions = {}): Promise<Mechanism> {
    return this.queues.stop(options);
  }
  /** The stopped device's state as plain data (write it with writeSnapshotFile). */
  snapshot(): DeviceSnapshot {
    return this.device.snapshot();
  }
  /** Brings this device (or `options.target`) back up with the snapshot; held requests go on. */
  reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<void> {
    return this.queues.reinit(snapshot, options);
  }
  /** Leaves a SUSPEND (or quiesce) stop without a reset. */
  resume(): Promise<void> {
    return this.queues.resume();
  }
  abstract close(): Promise<void>;
}

// What every driver shares for stop / state / reinit: its VirtioDevice and the QueueSet that
// pauses, stops, re-initialises and resumes all of its queues together.

import type { VirtioDevice, ReinitOptions, StopOptions } from '../lib/virtio/device.js';
import type { UvirtioError } from '../lib/errors.js';
import { closeReason, type QueueSet } from '../lib/virtio/queue-set.js';
import type { DeviceSnapshot, Mechanism } from '../lib/virtio/snapshot/index.js';

/**
 * The base of the device drivers (BlkDriver, NetDriver, ConsoleDriver, RngDriver): one {@link VirtioDevice} and the
 * {@link QueueSet} of its queues, with stop / snapshot / reinit / resume (provisional:
 * docs/provisional-registers.md#stopping-a-device), recover() after a device failure, and close().
 * Errors are the device's and QueueSet's (UvirtioError subclasses with stable codes).
 */
export abstract class StatefulDriver {
  /** The close() under way or done. */
  private closing: Promise<void> | undefined;

  protected constructor(
    /** The device this driver runs on (status, features, configuration, DMA memory). */
    readonly device: VirtioDevice,
    /** The driver's queues, stopped, re-initialised and recovered together. */
    protected readonly queues: QueueSet,
  ) {}

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
  /** Used elements the watchdog took after they waited a whole watchdog period with no interrupt (a device that forgot to notify; one on its way is not counted). */
  get missedInterrupts(): number {
    return this.queues.stats.missedInterrupts;
  }
  /** Notifications the watchdog sent again to a queue that made no progress (a device that missed or mis-asked for one). */
  get nudges(): number {
    return this.queues.stats.nudges;
  }
  /** Leaves a SUSPEND (or quiesce) stop without a reset. */
  resume(): Promise<void> {
    return this.queues.resume();
  }
  /**
   * Brings the device back after it failed (DEVICE_NEEDS_RESET, E_DEVICE_UNRESPONSIVE, a broken
   * ring, a lost back-end that is reachable again): reset and re-initialise with the same features
   * and queues. Requests pending at the failure were rejected with its error; retry them after this.
   */
  recover(): Promise<void> {
    return this.queues.recover();
  }
  /**
   * Resets the device and releases everything; requests still pending are rejected with `reason`
   * (default E_CLOSED). A `reason` that is not a UvirtioError (an Error, a string, …) is wrapped:
   * the requests get E_CLOSED with it as the `cause`, never the bare value. Idempotent: a call
   * while one is under way resolves when that one is done (the device reset, the buffers freed),
   * not before.
   */
  close(reason?: UvirtioError): Promise<void> {
    return (this.closing ??= this.shutDown(closeReason(reason, this.device.address)));
  }

  /** close(), run once: reset the device (queues.close()), then free what the driver owns. */
  protected abstract shutDown(reason?: UvirtioError): Promise<void>;
}

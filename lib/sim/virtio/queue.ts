// One virtqueue as the device holds it: the registers the driver programs through the common
// configuration (virtio 1.2 §4.1.4.3), and — in one explicit object — everything the device side
// tracks while the queue runs. That object is what a STOP / RING_STATE or SUSPEND implementation
// reads out and writes back (docs/provisional-registers.md).

import { VIRTIO_MSI_NO_VECTOR } from '../../spec/index.js';
import type { Chain, DeviceRing } from './ring/chain.js';
import { InFlight } from './in-flight.js';

export interface QueueDeviceState {
  /** Split: last_avail_idx (free-running u16). Packed: the next descriptor slot to read. */
  availIdx: number;
  /** Packed: the Driver Ring Wrap Counter the device expects (virtio 1.2 §2.8.1); starts at 1. */
  availWrap: boolean;
  /** Split: used->idx (free-running u16). Packed: the next slot a used descriptor goes to. */
  usedIdx: number;
  /** Packed: the Device Ring Wrap Counter; starts at 1. */
  usedWrap: boolean;
  /** usedIdx / usedWrap when the device last decided about a used-buffer notification (EVENT_IDX). */
  signalled: { idx: number; wrap: boolean } | undefined;
  /** Chains fetched from the ring and not yet returned as used, oldest first (in-flight.ts). */
  inFlight: InFlight<Chain>;
}

export function initialQueueState(): QueueDeviceState {
  return { availIdx: 0, availWrap: true, usedIdx: 0, usedWrap: true, signalled: undefined, inFlight: new InFlight<Chain>() };
}

export class SimQueue {
  readonly index: number;
  readonly maxSize: number;
  // Registers (virtio 1.2 §4.1.4.3). Addresses are assembled from two 32-bit halves.
  size: number;
  msixVector = VIRTIO_MSI_NO_VECTOR;
  enabled = false;
  desc = 0n;
  driver = 0n;
  device = 0n;
  /** Device-side progress; replaced wholesale on reset. */
  state: QueueDeviceState = initialQueueState();
  /** Built from the registers when the driver enables the queue. */
  ring: DeviceRing | undefined;
  /** Test control: the device asks the driver not to notify, as a device that polls would. */
  notifySuppressed = false;
  /** queue_msix_vector was written and not read back yet (virtio 1.2 §4.1.5.1.2.2). */
  vectorUnverified = false;
  /** Where the driver's available buffers ended when SUSPEND was set (DeviceRing.driverMark). */
  suspendMark: number | undefined;
  /** Both state registers written since the last reset (the proposal: on every initialisation). */
  stateWritten = { avail: false, used: false };
  /** Ids (split: heads; packed: buffer ids) the device holds: fetched, not yet used (virtio 1.2 §3.3.1). */
  private readonly busy: Uint8Array;
  /** Packed buffer ids at or beyond maxSize, which the spec allows but a ring rarely uses. */
  private busyHigh: Set<number> | undefined;

  constructor(index: number, maxSize: number) {
    this.index = index;
    this.maxSize = maxSize;
    this.size = maxSize;
    this.busy = new Uint8Array(maxSize);
  }

  /** Marks `id` held; false when it already was (the driver exposed it again). */
  claim(id: number): boolean {
    if (id < this.maxSize) {
      if (this.busy[id]) return false;
      this.busy[id] = 1;
      return true;
    }
    this.busyHigh ??= new Set();
    if (this.busyHigh.has(id)) return false;
    this.busyHigh.add(id);
    return true;
  }

  release(id: number): void {
    if (id < this.maxSize) this.busy[id] = 0;
    else this.busyHigh?.delete(id);
  }

  /** Device reset (virtio 1.2 §4.1.4.3.1): registers back to defaults, no state kept. */
  reset(): void {
    this.size = this.maxSize;
    this.msixVector = VIRTIO_MSI_NO_VECTOR;
    this.enabled = false;
    this.desc = 0n;
    this.driver = 0n;
    this.device = 0n;
    this.state = initialQueueState();
    this.ring = undefined;
    this.vectorUnverified = false;
    this.suspendMark = undefined;
    this.stateWritten = { avail: false, used: false };
    this.busy.fill(0);
    this.busyHigh = undefined;
  }
}

// The snapshot format: what `VirtioDevice.snapshot()` captures and `reinit()` consumes, as plain,
// versioned JSON. docs/snapshot.md describes every field; docs/snapshot.schema.json is the same
// format as a JSON Schema that other tools validate against. A snapshot file is untrusted input:
// validate.ts checks it in full, on its own and against the target device, before any of it
// touches a device.

import type { Layout } from '../../spec/ring.js';
import type { Mechanism } from '../../transport/state.js';

/** The value of a snapshot's `format` field: marks a JSON file as a uvirtio snapshot. */
export const SNAPSHOT_FORMAT = 'uvirtio-snapshot';

/** The snapshot format version this uvirtio writes and reads (docs/snapshot.md#versions). */
export const SNAPSHOT_VERSION = 1;

export type { Mechanism };

/** Every {@link Mechanism}, in order of preference. */
export const MECHANISMS: readonly Mechanism[] = ['ring-state', 'suspend', 'backend', 'quiesce'];

/** The most extra device state a snapshot may carry: 1 MiB (decoded bytes, not hex characters). */
export const MAX_DEVICE_STATE_BYTES = 1 << 20;

/** The largest snapshot file read, in bytes (32 MiB): 65535 queues and the largest deviceState fit with room to spare. */
export const MAX_SNAPSHOT_FILE_BYTES = 32 << 20;

/**
 * One virtqueue in a snapshot (docs/snapshot.md#queues). Addresses are the IOVAs the device was
 * given (virtio 1.2 §4.1.4.3 queue_desc / queue_driver / queue_device), as hex strings "0x…".
 */
export interface SnapshotQueue {
  /** Queue index on the device (0–65535). */
  index: number;
  /** Queue size in entries: split a power of two 2–32768 (§2.7), packed 1–32768 (§2.8). */
  size: number;
  /** IOVA of the descriptor table (hex). */
  desc: string;
  /** IOVA of the driver area: split available ring, packed driver event suppression (hex). */
  driver: string;
  /** IOVA of the device area: split used ring, packed device event suppression (hex). */
  device: string;
  /** MSI-X vector of the queue; 0xffff is VIRTIO_MSI_NO_VECTOR (§4.1.5.1.2). */
  vector: number;
  /**
   * Available state, 16 bits (docs/provisional-registers.md#state-encoding): split the next
   * available index the device reads; packed bits 0–14 index, bit 15 wrap counter.
   */
  availState: number;
  /** Used state, same encoding: split the used index; packed bits 0–14 index, bit 15 wrap counter. */
  usedState: number;
  /** Chains the driver had outstanding when the state was read (0–2^32−1). */
  inFlight: number;
}

/**
 * A device's state, as written to and read from a snapshot file (docs/snapshot.md). Fields are
 * written in this order.
 */
export interface DeviceSnapshot {
  /** Always {@link SNAPSHOT_FORMAT}. */
  format: typeof SNAPSHOT_FORMAT;
  /** Always {@link SNAPSHOT_VERSION}. */
  version: typeof SNAPSHOT_VERSION;
  /** When the snapshot was taken, ISO-8601 (informational; '' when absent from a file). */
  createdAt: string;
  /** Address of the device it was taken from, e.g. "sim:blk", "vfio:0000:00:03.0" (informational). */
  source: string;
  /** Virtio device id (virtio 1.2 §5: 1 net, 2 blk, 4 rng, …), 1–255. */
  deviceType: number;
  /** The device type's name; recomputed from deviceType when read, never trusted from a file. */
  deviceTypeName: string;
  /** How the state was obtained. */
  mechanism: Mechanism;
  /** Ring layout of every queue: split (§2.7) or packed (§2.8, VIRTIO_F_RING_PACKED). */
  layout: Layout;
  /** Negotiated feature bits, hex string "0x…" (up to 128 bits). */
  features: string;
  /** The same features by name ("VERSION_1|RING_STATE"); recomputed when read. */
  featureNames: string;
  /** One entry per queue, 1–65535 entries, indices unique. */
  queues: SnapshotQueue[];
  /**
   * Reserved: hex bytes, written empty. A generic copy of the device configuration is not allowed
   * (virtio 1.2 §2.5.1, §4.1.3.1) and reinit does not need it.
   */
  config: string;
  /**
   * Extra device state from the DEVICE_STATE mailbox (docs/provisional-registers.md#device-state),
   * hex bytes opaque to the SDK (1 byte – {@link MAX_DEVICE_STATE_BYTES}); null when the device has none.
   */
  deviceState: {
    /** The state's bytes, as an even number of hex digits. */
    bytes: string;
  } | null;
}

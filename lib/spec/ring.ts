// Virtqueue layouts (virtio 1.2 §2.7 split, §2.8 packed) and the provisional packed-state encoding
// (docs/provisional-registers.md). Ground layer: imports nothing.

/** Which virtqueue layout a queue uses (virtio 1.2 §2.7 split, §2.8 packed). */
export type Layout = 'split' | 'packed';

/** A piece of DMA memory the device may read or write: device address and length in bytes. */
export interface Segment {
  /** Device address (IOVA) of the first byte. */
  addr: bigint;
  /** Length in bytes, > 0. */
  len: number;
}

/** Device addresses of the three ring areas (split: desc/avail/used; packed: desc/driver/device event). */
export interface QueueAddresses {
  /** The descriptor table (virtio 1.2 §4.1.4.3 queue_desc). */
  desc: bigint;
  /** The driver area: split available ring, packed driver event suppression (queue_driver). */
  driver: bigint;
  /** The device area: split used ring, packed device event suppression (queue_device). */
  device: bigint;
}

// ---- Split virtqueue (virtio 1.2 §2.7) ----
/** struct virtq_desc (virtio 1.2 §2.7.5): size and field offsets, bytes. */
/**
 * struct virtq_avail byte offsets (virtio 1.2 §2.7.6): le16 flags, le16 idx, then ring[size] of
 * le16 entries; le16 used_event follows the ring (§2.7.7, with EVENT_IDX).
 */
export const SplitAvail = {
  /** le16 flags (VIRTQ_AVAIL_F_NO_INTERRUPT). */
  FLAGS: 0,
  /** le16 idx: where the driver puts the next entry (free-running). */
  IDX: 2,
  /** ring[size]: descriptor chain heads. */
  RING: 4,
  /** Bytes per ring entry (le16). */
  ENTRY_SIZE: 2,
} as const;
/**
 * struct virtq_used byte offsets (virtio 1.2 §2.7.8): le16 flags, le16 idx, then ring[size] of
 * struct virtq_used_elem { le32 id; le32 len; }; le16 avail_event follows the ring.
 */
export const SplitUsed = {
  /** le16 flags (VIRTQ_USED_F_NO_NOTIFY). */
  FLAGS: 0,
  /** le16 idx: where the device puts the next element (free-running). */
  IDX: 2,
  /** ring[size] of used elements. */
  RING: 4,
  /** Bytes per used element. */
  ELEM_SIZE: 8,
  /** le32 id: the head of the chain used, within an element. */
  ELEM_ID: 0,
  /** le32 len: bytes written into the chain's device-writable buffers, within an element. */
  ELEM_LEN: 4,
} as const;
/** struct virtq_desc byte offsets and size (virtio 1.2 §2.7.5). */
export const SplitDesc = {
  /** Size of one descriptor. */
  SIZE: 16,
  /** le64 buffer address. */
  ADDR: 0,
  /** le32 buffer length. */
  LEN: 8,
  /** le16 {@link DescFlag} bits. */
  FLAGS: 12,
  /** le16 index of the next descriptor of the chain. */
  NEXT: 14,
} as const;
/** virtq_desc.flags (virtio 1.2 §2.7.5); the packed ring uses the same three low bits (§2.8.13). */
export const DescFlag = {
  /** The chain continues (split: at `next`; packed: in the next slot). */
  NEXT: 1,
  /** The buffer is device-writable (otherwise device-readable). */
  WRITE: 2,
  /** The buffer is a table of indirect descriptors (§2.7.5.3). */
  INDIRECT: 4,
} as const;
/** virtq_avail.flags (virtio 1.2 §2.7.6). */
export const AvailFlag = {
  /** The driver asks for no used-buffer notifications (ignored with EVENT_IDX). */
  NO_INTERRUPT: 1,
} as const;
/** virtq_used.flags (virtio 1.2 §2.7.8). */
export const UsedFlag = {
  /** The device asks for no available-buffer notifications (ignored with EVENT_IDX). */
  NO_NOTIFY: 1,
} as const;
/** Largest split queue size, entries; a split size is a power of two (virtio 1.2 §2.7). */
export const SPLIT_MAX_SIZE = 32768;
/** Alignment of the split ring areas, bytes (virtio 1.2 §2.7). */
export const SplitAlign = {
  /** Descriptor table. */
  DESC: 16,
  /** Available ring. */
  AVAIL: 2,
  /** Used ring. */
  USED: 4,
} as const;

// ---- Packed virtqueue (virtio 1.2 §2.8) ----
/** struct pvirtq_desc (virtio 1.2 §2.8.13): size and field offsets, bytes. */
export const PackedDesc = {
  /** Size of one descriptor. */
  SIZE: 16,
  /** le64 buffer address. */
  ADDR: 0,
  /** le32 buffer length (used: bytes written). */
  LEN: 8,
  /** le16 buffer id. */
  ID: 12,
  /** le16 {@link PackedFlag} bits, written last (§2.8.21). */
  FLAGS: 14,
} as const;
/** pvirtq_desc.flags (virtio 1.2 §2.8.1, §2.8.13). */
export const PackedFlag = {
  /** The chain continues in the next slot. */
  NEXT: 1,
  /** The buffer is device-writable. */
  WRITE: 2,
  /** The buffer is a table of indirect descriptors. */
  INDIRECT: 4,
  /** Set to the driver's wrap counter when the driver makes the descriptor available (§2.8.1). */
  AVAIL: 1 << 7,
  /** Set to the device's wrap counter when the device marks it used; the driver writes its inverse (§2.8.1). */
  USED: 1 << 15,
} as const;
/** Event suppression flags (virtio 1.2 §2.8.10). */
export const PackedEventFlag = {
  /** Notifications enabled. */
  ENABLE: 0,
  /** Notifications disabled. */
  DISABLE: 1,
  /** Notify only at the descriptor named by off and wrap (with EVENT_IDX). */
  DESC: 2,
} as const;
/** Largest packed queue size, entries; any size from 1 (virtio 1.2 §2.8). */
export const PACKED_MAX_SIZE = 32768;
/** Alignment of the packed ring areas, bytes (virtio 1.2 §2.8). */
export const PackedAlign = {
  /** Descriptor ring. */
  DESC: 16,
  /** Each event suppression structure. */
  EVENT: 4,
} as const;

// ---- Provisional state encoding (docs/provisional-registers.md#state-encoding) ----
/** Packed ring state: bit 15 is the wrap counter. */
export const PACKED_STATE_WRAP = 0x8000;
/** Packed ring state: bits 0–14 are the ring index. */
export const PACKED_STATE_INDEX_MASK = 0x7fff;

/**
 * The 16-bit state value of a packed queue position, as the provisional registers and snapshots
 * carry it: bits 0–14 `index`, bit 15 the wrap counter (docs/provisional-registers.md#state-encoding).
 */
export function packPackedState(index: number, wrap: boolean): number {
  return (index & PACKED_STATE_INDEX_MASK) | (wrap ? PACKED_STATE_WRAP : 0);
}
/** The ring index (bits 0–14) and wrap counter (bit 15) of a packed state value; the inverse of {@link packPackedState}. */
export function unpackPackedState(v: number): {
  /** Ring index, 0–32767. */
  index: number;
  /** Wrap counter. */
  wrap: boolean;
} {
  return { index: v & PACKED_STATE_INDEX_MASK, wrap: (v & PACKED_STATE_WRAP) !== 0 };
}

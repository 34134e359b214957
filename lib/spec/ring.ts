// Virtqueue layouts (virtio 1.2 §2.7 split, §2.8 packed) and the provisional packed-state encoding
// (docs/provisional-registers.md). Ground layer: imports nothing.

/** Which virtqueue layout a queue uses (virtio 1.2 §2.7 split, §2.8 packed). */
export type Layout = 'split' | 'packed';

/** A piece of DMA memory the device may read or write: device address and length in bytes. */
export interface Segment {
  addr: bigint;
  len: number;
}

/** Device addresses of the three ring areas (split: desc/avail/used; packed: desc/driver/device event). */
export interface QueueAddresses {
  desc: bigint;
  driver: bigint;
  device: bigint;
}

// ---- Split virtqueue (virtio 1.2 §2.7) ----
export const SplitDesc = { SIZE: 16, ADDR: 0, LEN: 8, FLAGS: 12, NEXT: 14 } as const;
export const DescFlag = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
export const AvailFlag = { NO_INTERRUPT: 1 } as const;
export const UsedFlag = { NO_NOTIFY: 1 } as const;
export const SPLIT_MAX_SIZE = 32768;
export const SplitAlign = { DESC: 16, AVAIL: 2, USED: 4 } as const;

// ---- Packed virtqueue (virtio 1.2 §2.8) ----
export const PackedDesc = { SIZE: 16, ADDR: 0, LEN: 8, ID: 12, FLAGS: 14 } as const;
export const PackedFlag = { NEXT: 1, WRITE: 2, INDIRECT: 4, AVAIL: 1 << 7, USED: 1 << 15 } as const;
/** Event suppression flags (virtio 1.2 §2.8.10). */
export const PackedEventFlag = { ENABLE: 0, DISABLE: 1, DESC: 2 } as const;
export const PACKED_MAX_SIZE = 32768;
export const PackedAlign = { DESC: 16, EVENT: 4 } as const;

// ---- Provisional state encoding (SPEC-NOTES §1) ----
/** Packed ring state: bits 0–14 index, bit 15 wrap counter. */
export const PACKED_STATE_WRAP = 0x8000;
export const PACKED_STATE_INDEX_MASK = 0x7fff;

/** The state values the provisional registers carry for the packed layout. */
export function packPackedState(index: number, wrap: boolean): number {
  return (index & PACKED_STATE_INDEX_MASK) | (wrap ? PACKED_STATE_WRAP : 0);
}
export function unpackPackedState(v: number): { index: number; wrap: boolean } {
  return { index: v & PACKED_STATE_INDEX_MASK, wrap: (v & PACKED_STATE_WRAP) !== 0 };
}

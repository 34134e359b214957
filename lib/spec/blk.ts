// virtio-blk (virtio 1.2 §5.2): request types, status, configuration layout. Ground layer.

// ---- Block device (virtio 1.2 §5.2) ----
export const BlkReq = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13 } as const;
export const BlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;
export const BLK_SECTOR_SIZE = 512;
export const BLK_REQ_HEADER_LEN = 16;
export const BLK_ID_BYTES = 20;
/** Offsets in struct virtio_blk_config (virtio 1.2 §5.2.4). */
export const BlkConfig = {
  CAPACITY: 0, SIZE_MAX: 8, SEG_MAX: 12, GEOMETRY: 16, BLK_SIZE: 20, NUM_QUEUES: 34, LEN: 36,
} as const;

// ---- Block device, continued: discard / write-zeroes (virtio 1.2 §5.2.4, §5.2.6) ----
/** struct virtio_blk_config past num_queues (virtio 1.2 §5.2.4). */
export const BlkConfigExt = {
  MAX_DISCARD_SECTORS: 36, // le32
  MAX_DISCARD_SEG: 40, // le32
  DISCARD_SECTOR_ALIGNMENT: 44, // le32
  MAX_WRITE_ZEROES_SECTORS: 48, // le32
  MAX_WRITE_ZEROES_SEG: 52, // le32
  WRITE_ZEROES_MAY_UNMAP: 56, // u8, then unused1[3]
  /** Length of the configuration up to and including unused1 (before the secure-erase fields). */
  LEN: 60,
} as const;

/** struct virtio_blk_discard_write_zeroes (virtio 1.2 §5.2.6): le64 sector, le32 num_sectors, le32 flags. */
export const BlkDiscardSegment = { SECTOR: 0, NUM_SECTORS: 8, FLAGS: 12, LEN: 16 } as const;
/** flags.unmap: only for WRITE_ZEROES; a DISCARD with it set is answered UNSUPP (§5.2.6.2). */
export const BLK_DISCARD_FLAG_UNMAP = 1;

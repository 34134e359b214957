// virtio-blk (virtio 1.2 §5.2): request types, status, configuration layout. Ground layer.

// ---- Block device (virtio 1.2 §5.2) ----
/** Request types: the `type` field of struct virtio_blk_req (virtio 1.2 §5.2.6). */
export const BlkReq = {
  /** Read sectors into the device-writable data. */
  IN: 0,
  /** Write the device-readable data to sectors. */
  OUT: 1,
  /** Write back the device's cache (with VIRTIO_BLK_F_FLUSH). */
  FLUSH: 4,
  /** Read the device's id string, {@link BLK_ID_BYTES} bytes. */
  GET_ID: 8,
  /** Discard sector ranges (with VIRTIO_BLK_F_DISCARD). */
  DISCARD: 11,
  /** Write zeroes to sector ranges (with VIRTIO_BLK_F_WRITE_ZEROES). */
  WRITE_ZEROES: 13,
} as const;
/** The status byte the device writes last in a request (virtio 1.2 §5.2.6). */
export const BlkStatus = {
  /** Done. */
  OK: 0,
  /** Failed on the device or its storage. */
  IOERR: 1,
  /** Not supported by the device. */
  UNSUPP: 2,
} as const;
/** Sector size of every blk request and of `capacity`, bytes (virtio 1.2 §5.2.6). */
export const BLK_SECTOR_SIZE = 512;
/** Length of the request header (le32 type, le32 reserved, le64 sector), bytes (§5.2.6). */
export const BLK_REQ_HEADER_LEN = 16;
/** Length of the GET_ID reply, bytes (§5.2.6). */
export const BLK_ID_BYTES = 20;
/** Offsets in struct virtio_blk_config (virtio 1.2 §5.2.4). */
export const BlkConfig = {
  /** le64: size in 512-byte sectors. */
  CAPACITY: 0,
  /** le32: largest segment, bytes (VIRTIO_BLK_F_SIZE_MAX). */
  SIZE_MAX: 8,
  /** le32: most segments in a request (VIRTIO_BLK_F_SEG_MAX). */
  SEG_MAX: 12,
  /** Legacy geometry: le16 cylinders, u8 heads, u8 sectors (VIRTIO_BLK_F_GEOMETRY). */
  GEOMETRY: 16,
  /** le32: optimal block size, bytes (VIRTIO_BLK_F_BLK_SIZE). */
  BLK_SIZE: 20,
  /** le16: request queues (VIRTIO_BLK_F_MQ). */
  NUM_QUEUES: 34,
  /** Length of the configuration up to and including num_queues and its padding. */
  LEN: 36,
} as const;

// ---- Block device, continued: discard / write-zeroes (virtio 1.2 §5.2.4, §5.2.6) ----
/** struct virtio_blk_config past num_queues (virtio 1.2 §5.2.4). */
export const BlkConfigExt = {
  /** le32: most sectors in one DISCARD segment. */
  MAX_DISCARD_SECTORS: 36,
  /** le32: most segments in one DISCARD request. */
  MAX_DISCARD_SEG: 40,
  /** le32: DISCARD sector alignment, sectors. */
  DISCARD_SECTOR_ALIGNMENT: 44,
  /** le32: most sectors in one WRITE_ZEROES segment. */
  MAX_WRITE_ZEROES_SECTORS: 48,
  /** le32: most segments in one WRITE_ZEROES request. */
  MAX_WRITE_ZEROES_SEG: 52,
  /** u8 (then unused1[3]): whether WRITE_ZEROES may unmap. */
  WRITE_ZEROES_MAY_UNMAP: 56,
  /** Length of the configuration up to and including unused1 (before the secure-erase fields). */
  LEN: 60,
} as const;

/** struct virtio_blk_discard_write_zeroes (virtio 1.2 §5.2.6): le64 sector, le32 num_sectors, le32 flags. */
export const BlkDiscardSegment = {
  /** le64: first sector. */
  SECTOR: 0,
  /** le32: sectors in the range. */
  NUM_SECTORS: 8,
  /** le32: flags ({@link BLK_DISCARD_FLAG_UNMAP}). */
  FLAGS: 12,
  /** Length of one segment, bytes. */
  LEN: 16,
} as const;
/** flags.unmap: only for WRITE_ZEROES; a DISCARD with it set is answered UNSUPP (§5.2.6.2). */
export const BLK_DISCARD_FLAG_UNMAP = 1;

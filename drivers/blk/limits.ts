// What a virtio-blk device allows, read once from its configuration (virtio 1.2 §5.2.4, §5.2.5)
// and turned into the numbers the driver plans requests with. Every limit the device advertises
// through a negotiated feature is honoured; one it does not advertise leaves the driver's own.

import { BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkConfigExt, BlkDiscardSegment } from '../../lib/spec/index.js';
import { DeviceError, UsageError } from '../../lib/errors.js';
import type { VirtioDevice } from '../../lib/virtio/device.js';

/** Limits for DISCARD or WRITE_ZEROES (sectors per segment, segments per request, alignment in sectors). */
export interface RangeLimits {
  /** Sectors one range segment may cover (max_discard_sectors / max_write_zeroes_sectors; 0xffffffff when unset). */
  maxSectors: number;
  /** Range segments per request (max_discard_seg / max_write_zeroes_seg, capped by what fits one request's data). */
  maxSegments: number;
  /** Segments start and end on multiples of this many sectors (discard_sector_alignment for DISCARD, else 1). */
  alignment: number;
}

/**
 * What a virtio-blk device allows, read once from its configuration (virtio 1.2 §5.2.4) under the
 * negotiated features (§5.2.3), as the numbers the driver plans requests with. Sectors are 512 bytes
 * whatever the block size.
 */
export interface BlkLimits {
  /** Device size in 512-byte sectors (the capacity field). */
  capacitySectors: number;
  /** VIRTIO_BLK_F_RO was negotiated: writes, discards and write-zeroes are refused. */
  readOnly: boolean;
  /** Logical block size in bytes (blk_size with BLK_SIZE, else 512): transfers are whole blocks. */
  blockSize: number;
  /** Data segments per request (seg_max, and what fits the ring without indirect descriptors). */
  segMax: number;
  /** Bytes per data segment (size_max with SIZE_MAX, else the whole transfer). */
  sizeMax: number;
  /** Bytes per request: at most maxTransfer, segMax × sizeMax, whole blocks. */
  maxTransfer: number;
  /** DISCARD limits (§5.2.6), or undefined when VIRTIO_BLK_F_DISCARD was not negotiated. */
  discard: RangeLimits | undefined;
  /** WRITE_ZEROES limits (§5.2.6), or undefined when VIRTIO_BLK_F_WRITE_ZEROES was not negotiated. */
  writeZeroes: RangeLimits | undefined;
}

/** u32 limits of 0 mean "not set"; fall back to `otherwise`. */
function orElse(v: number, otherwise: number): number {
  return v === 0 ? otherwise : v;
}

export function readLimits(device: VirtioDevice, queueSize: number, maxTransfer: number): BlkLimits {
  const t = device.config;
  const blockSize = device.has(BlkFeature.BLK_SIZE) ? t.read32(BlkConfig.BLK_SIZE) : BLK_SECTOR_SIZE;
  if (blockSize < BLK_SECTOR_SIZE || blockSize % BLK_SECTOR_SIZE !== 0 || (blockSize & (blockSize - 1)) !== 0) {
    throw new DeviceError('E_CAP_INVALID', `${device.address}: blk_size ${blockSize} is not a power-of-two multiple of ${BLK_SECTOR_SIZE}`,
      'the device\'s configuration breaks virtio 1.2 §5.2.4: set a logical block size of 512 × 2^n on the device (QEMU: logical_block_size)');
  }
  // Header and status take two descriptors of a direct chain (virtio 1.2 §2.7.5.3.1: no chain longer than the queue).
  const ringSegments = queueSize - 2;
  const deviceSegMax = device.has(BlkFeature.SEG_MAX) ? orElse(t.read32(BlkConfig.SEG_MAX), Infinity) : Infinity;
  const segMax = Math.min(ringSegments, deviceSegMax);
  const sizeMax = device.has(BlkFeature.SIZE_MAX) ? orElse(t.read32(BlkConfig.SIZE_MAX), maxTransfer) : maxTransfer;
  const perRequest = Math.min(maxTransfer, segMax * sizeMax);
  const transfer = perRequest - (perRequest % blockSize);
  if (transfer < blockSize || segMax < 1) {
    const what = `${device.address}: no request can carry one ${blockSize}-byte block (seg_max ${segMax}, size_max ${sizeMax}, maxTransfer ${maxTransfer}, queue size ${queueSize})`;
    // Whose limit it is: the device's own seg_max × size_max (§5.2.4), which no option can change,
    // or the caller's maxTransfer / queue size, which a larger value fixes.
    if (deviceSegMax * sizeMax < blockSize) {
      throw new DeviceError('E_CAP_INVALID', what, "the device's seg_max × size_max is below its own block size: no driver can use it; fix the device (or its back-end's configuration)");
    }
    throw new UsageError('E_INVALID_ARGUMENT', what,
      `raise maxTransfer to at least ${blockSize}, and the queue size to at least ${Math.ceil(blockSize / sizeMax) + 2} (a header, the block's segments of at most size_max, a status)`);
  }
  // Range segments are 16 bytes of request data; a request's data must fit a slot.
  const slotSegments = Math.floor(transfer / BlkDiscardSegment.LEN);
  const range = (sectors: number, segments: number, alignment: number): RangeLimits => ({
    maxSectors: orElse(t.read32(sectors), 0xffffffff),
    maxSegments: Math.min(slotSegments, orElse(t.read32(segments), 1)),
    alignment,
  });
  return {
    capacitySectors: Number(t.read64(BlkConfig.CAPACITY)),
    readOnly: device.has(BlkFeature.RO),
    blockSize,
    segMax,
    sizeMax,
    maxTransfer: transfer,
    discard: device.has(BlkFeature.DISCARD)
      ? range(BlkConfigExt.MAX_DISCARD_SECTORS, BlkConfigExt.MAX_DISCARD_SEG, orElse(t.read32(BlkConfigExt.DISCARD_SECTOR_ALIGNMENT), 1))
      : undefined,
    writeZeroes: device.has(BlkFeature.WRITE_ZEROES)
      ? range(BlkConfigExt.MAX_WRITE_ZEROES_SECTORS, BlkConfigExt.MAX_WRITE_ZEROES_SEG, 1)
      : undefined,
  };
}

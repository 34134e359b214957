// DISCARD and WRITE_ZEROES as the reference device carries them out (virtio 1.2 §5.2.6): the data
// is an array of 16-byte struct virtio_blk_discard_write_zeroes, each a range of 512-byte sectors,
// checked against the limits the device advertises in its configuration (§5.2.4).

import { BLK_SECTOR_SIZE, BlkReq, BlkStatus, BLK_DISCARD_FLAG_UNMAP, BlkDiscardSegment } from '../../spec/index.js';
import type { RuleId } from '../virtio/rules.js';

/** What the device advertises for one of the two commands. */
export interface RangeLimits {
  /** max_discard_sectors / max_write_zeroes_sectors: sectors per segment at most. */
  maxSectors: number;
  /** max_discard_seg / max_write_zeroes_seg: segments per request at most. */
  maxSegments: number;
  /** discard_sector_alignment (DISCARD only; 1 for WRITE_ZEROES): segments start and end on it. */
  alignment: number;
}

export interface SectorRange {
  sector: number;
  sectors: number;
}

/**
 * Parses and checks the segments of a DISCARD or WRITE_ZEROES request. Returns the ranges, or the
 * status to answer: UNSUPP for unknown flags and for unmap on DISCARD (§5.2.6.2), IOERR for
 * anything else wrong (length, limits, alignment, beyond capacity). What §5.2.6.1 forbids the
 * driver (data not whole ranges, more ranges than the limit, unmap on DISCARD, beyond capacity) is
 * also reported.
 */
export function parseRanges(
  type: number, data: Uint8Array, limits: RangeLimits, capacitySectors: number, report: (rule: RuleId, message: string) => void,
): SectorRange[] | number {
  if (data.length === 0 || data.length % BlkDiscardSegment.LEN !== 0) {
    report('blk-data-length', `${data.length} bytes of ranges, not a whole number of ${BlkDiscardSegment.LEN}-byte ranges`);
    return BlkStatus.IOERR;
  }
  const count = data.length / BlkDiscardSegment.LEN;
  if (count > limits.maxSegments) {
    report('blk-too-many-ranges', `${count} ranges, more than the ${limits.maxSegments} the device allows`);
    return BlkStatus.IOERR;
  }
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const ranges: SectorRange[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * BlkDiscardSegment.LEN;
    const sector = v.getBigUint64(at + BlkDiscardSegment.SECTOR, true);
    const sectors = v.getUint32(at + BlkDiscardSegment.NUM_SECTORS, true);
    const flags = v.getUint32(at + BlkDiscardSegment.FLAGS, true);
    if ((flags & ~BLK_DISCARD_FLAG_UNMAP) !== 0) return BlkStatus.UNSUPP;
    if (type === BlkReq.DISCARD && flags & BLK_DISCARD_FLAG_UNMAP) {
      report('blk-discard-unmap', `DISCARD range ${i} has the unmap bit set`);
      return BlkStatus.UNSUPP;
    }
    if (sectors === 0 || sectors > limits.maxSectors) return BlkStatus.IOERR;
    if (sector + BigInt(sectors) > BigInt(capacitySectors)) {
      report('blk-beyond-capacity', `range ${i} (sector ${sector} + ${sectors}) is beyond the capacity of ${capacitySectors} sectors`);
      return BlkStatus.IOERR;
    }
    if (sector % BigInt(limits.alignment) !== 0n || sectors % limits.alignment !== 0) return BlkStatus.IOERR;
    ranges.push({ sector: Number(sector), sectors });
  }
  return ranges;
}

/** A RAM disk has nothing to deallocate: both commands leave zeros, which reads then return. */
export function zeroRanges(disk: Uint8Array, ranges: readonly SectorRange[]): void {
  for (const r of ranges) disk.fill(0, r.sector * BLK_SECTOR_SIZE, (r.sector + r.sectors) * BLK_SECTOR_SIZE);
}

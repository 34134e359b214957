// Turning what a caller asks for into requests the device accepts: a transfer into requests of at
// most maxTransfer bytes, a request's data into segments of at most size_max bytes (virtio 1.2
// §5.2.4 seg_max / size_max), and DISCARD / WRITE_ZEROES ranges into 16-byte segments of at most
// max_*_sectors, grouped at most max_*_seg to a request (§5.2.6).

import { BLK_SECTOR_SIZE, BLK_DISCARD_FLAG_UNMAP, BlkDiscardSegment } from '../../lib/spec/index.js';
import type { Segment } from '../../lib/virtio/queue/types.js';
import type { RangeLimits } from './limits.js';

/** A run of 512-byte sectors on a block device: [sector, sector + sectors). */
export interface SectorRange {
  /** First sector (512-byte units from the start of the device). */
  sector: number;
  /** Length in 512-byte sectors. */
  sectors: number;
}

/** One request's share of a transfer: its sectors and where its bytes sit in the caller's buffer. */
export interface Piece extends SectorRange {
  offset: number;
}

/** Splits sectors [sector, sector + sectors) into pieces of at most `maxSectors`. */
export function splitTransfer(sector: number, sectors: number, maxSectors: number): Piece[] {
  const pieces: Piece[] = [];
  for (let done = 0; done < sectors; done += maxSectors) {
    pieces.push({ sector: sector + done, sectors: Math.min(maxSectors, sectors - done), offset: done * BLK_SECTOR_SIZE });
  }
  return pieces;
}

/** Contiguous DMA bytes at `base` as segments of at most `sizeMax` bytes. */
export function dataSegments(base: bigint, bytes: number, sizeMax: number): Segment[] {
  const segments: Segment[] = [];
  for (let at = 0; at < bytes; at += sizeMax) segments.push({ addr: base + BigInt(at), len: Math.min(sizeMax, bytes - at) });
  return segments;
}

/**
 * Cuts ranges into segments of at most `maxSectors` (rounded down to the alignment, so every cut
 * falls on it) and groups them, `maxSegments` to a request.
 */
export function planRanges(ranges: readonly SectorRange[], limits: RangeLimits): SectorRange[][] {
  const step = Math.max(limits.alignment, limits.maxSectors - (limits.maxSectors % limits.alignment));
  const segments = ranges.flatMap((r) => splitTransfer(r.sector, r.sectors, step).map(({ sector, sectors }) => ({ sector, sectors })));
  const requests: SectorRange[][] = [];
  for (let i = 0; i < segments.length; i += limits.maxSegments) requests.push(segments.slice(i, i + limits.maxSegments));
  return requests;
}

/** struct virtio_blk_discard_write_zeroes[] (virtio 1.2 §5.2.6): le64 sector, le32 num_sectors, le32 flags. */
export function encodeRanges(ranges: readonly SectorRange[], unmap: boolean): Uint8Array {
  const out = new Uint8Array(ranges.length * BlkDiscardSegment.LEN);
  const v = new DataView(out.buffer);
  ranges.forEach((r, i) => {
    const at = i * BlkDiscardSegment.LEN;
    v.setBigUint64(at + BlkDiscardSegment.SECTOR, BigInt(r.sector), true);
    v.setUint32(at + BlkDiscardSegment.NUM_SECTORS, r.sectors, true);
    v.setUint32(at + BlkDiscardSegment.FLAGS, unmap ? BLK_DISCARD_FLAG_UNMAP : 0, true);
  });
  return out;
}

// IOVA space for VFIO type1: first-fit over the ranges the IOMMU reports usable (which leave out
// reserved windows such as x86's MSI range at 0xfee00000), with freed ranges merged back.

import { DmaError } from '../errors.js';
import type { IovaRange } from './container.js';

/** IOVAs below this are never handed out, so that a zero or small number is never a valid address. */
const FLOOR = 0x10_0000n;

/** First-fit allocator of IOVA ranges for VFIO type1 (the DMA regions' device addresses). */
export class IovaAllocator {
  /** Free [start, end) pairs, sorted by start. */
  private free: [bigint, bigint][];

  /** `floor`: nothing below it is handed out (default 1 MiB; 0 for offsets inside one buffer). */
  constructor(ranges: IovaRange[], floor = FLOOR) {
    const usable = ranges.length ? ranges : [{ start: 0n, end: (1n << 39n) - 1n }];
    this.free = usable
      .map((r): [bigint, bigint] => [r.start < floor ? floor : r.start, r.end + 1n])
      .filter(([s, e]) => e > s)
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  /**
   * The lowest free IOVA of `size` bytes aligned to `align` (a power of two); taken until release().
   * @throws DmaError E_DMA_EXHAUSTED when no free range fits.
   */
  alloc(size: bigint, align: bigint): bigint {
    for (let i = 0; i < this.free.length; i++) {
      const [s, e] = this.free[i]!;
      const start = ((s + align - 1n) / align) * align;
      if (start + size > e) continue;
      const pieces: [bigint, bigint][] = [];
      if (start > s) pieces.push([s, start]);
      if (start + size < e) pieces.push([start + size, e]);
      this.free.splice(i, 1, ...pieces);
      return start;
    }
    throw new DmaError('E_DMA_EXHAUSTED', `no free IOVA range of ${size} bytes aligned to ${align}`,
      'free DMA regions you no longer need');
  }

  /** Whether everything is free again (one range, as constructed). */
  isEmpty(whole: bigint): boolean {
    return this.free.length === 1 && this.free[0]![1] - this.free[0]![0] === whole;
  }

  /** Gives [start, start+size) back, merged with its free neighbours. */
  release(start: bigint, size: bigint): void {
    this.free.push([start, start + size]);
    this.free.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const merged: [bigint, bigint][] = [];
    for (const r of this.free) {
      const last = merged[merged.length - 1];
      if (last && last[1] === r[0]) last[1] = r[1];
      else merged.push([r[0], r[1]]);
    }
    this.free = merged;
  }
}

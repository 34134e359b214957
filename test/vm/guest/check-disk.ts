// What test/vm/guest/check.ts writes to each virtio-blk disk before `uvirtio check` runs, and what
// test/vm/check.test.ts expects in the disk image afterwards: FILLED sectors of a pattern from
// sector 0 (the scratch sector among them, so that its write-back shows), zeros after them.

import { pattern } from './blk-pattern.js';

/** The sector `uvirtio check --scratch-sector` may write (it is read first and written back). */
export const SCRATCH_SECTOR = 8;
/** Sectors 0 .. FILLED-1 hold fill(n) before the check. */
export const FILLED_SECTORS = 64;

/** The bytes of sectors 0 .. FILLED-1 of the n-th disk (scripts/vm/qemu.mjs: blk0.img, blk1.img). */
export function fill(n: number): Uint8Array {
  return pattern(n + 5, FILLED_SECTORS * 512);
}

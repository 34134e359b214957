// What test/vm/guest/blk-io.ts writes and test/vm/blk.test.ts looks for in the disk image.

export const FIRST_SECTOR = 1;
export const SECTORS = 8;

/** The bytes written at FIRST_SECTOR of the n-th blk function. */
export function pattern(n: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + n * 31 + 1) & 0xff);
}

// Where test/vm/guest/blk-driver.ts writes on each virtio-blk disk, and what: the host side
// (test/vm/blk-driver.test.ts) reads the same sectors from the disk images after the VM exits.
// 512-byte sectors; the disks are 16 MiB (32768 sectors). Nothing here overlaps blk-pattern.ts.

/** One region: `sectors` sectors from `sector`, filled with pattern(tag). */
export interface Region {
  name: string;
  sector: number;
  sectors: number;
  tag: number;
}

/** Regions written through each disk's own device (n: 0 = split blk0.img, 1 = packed blk1.img). */
export function regionsOf(n: number): Region[] {
  const t = (k: number): number => 16 * n + k;
  return [
    { name: 'msix', sector: 64, sectors: 8, tag: t(1) },
    { name: 'poll', sector: 128, sectors: 8, tag: t(2) },
    { name: 'before-reset', sector: 192, sectors: 8, tag: t(3) },
    { name: 'after-reset', sector: 256, sectors: 8, tag: t(4) },
  ];
}

/** Single-sector writes around a stop/reinit: STATE_FIRST[mode] + i, i < STATE_WRITES. */
export const STATE_FIRST = { msix: 1024, poll: 2048 } as const;
export const STATE_WRITES = 96;
/** Single-sector writes that migrate between blk0's device and a third device on the same image. */
export const MIGRATE_FIRST = 4096;
export const MIGRATE_WRITES = 120;

export function pattern(tag: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 11 + tag * 37 + 3) & 0xff);
}

/** The bytes of one numbered single-sector write (the sector number is in it, so misplaced writes show). */
export function sectorBytes(sector: number, tag: number): Uint8Array {
  const b = pattern(tag + sector, 512);
  new DataView(b.buffer).setUint32(0, sector, true);
  return b;
}

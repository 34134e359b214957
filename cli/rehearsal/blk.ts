// The blk rehearsal workload: versioned, checksummed single-block writes and checked reads, on the
// first 1024 logical blocks of the device (a rehearsal writes there: use a scratch disk).
//
// Each block carries { magic, sector, version, run, checksum } and data derived from them; `run`
// tells this rehearsal's blocks from those an earlier one left on the same disk. At most one
// request per block is in flight, so "the latest completed version" of a block is well defined:
//   corrupted  a block this rehearsal wrote whose checksum, magic or sector number is wrong
//   lost       a block older than the latest completed write to it (the write is not there, or an
//              older write was done again after it)
//   duplicated requests the device carried out more often than the driver saw them complete
//              (counted by the reference device; on other devices replays show up as `lost`)
// Blocks this rehearsal never wrote are not judged: whatever the disk held there is not its data.

import { BLK_SECTOR_SIZE } from '../../lib/spec/index.js';
import { UsageError } from '../../lib/errors.js';
import type { BlkDriver } from '../../drivers/blk/index.js';
import { fnv1a, randomInt, type Random } from './random.js';
import { DriverWorkload, type Verdict, type Workload } from './workload.js';

const MAGIC = 0x55565248; // "UVRH"

const DATA = 20;

/** A block's content for `version` of rehearsal `run`: `size` bytes (a whole logical block, 512 by default). */
export function sectorPayload(sector: number, version: number, run = 0, size = BLK_SECTOR_SIZE): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  for (let i = DATA; i < b.length; i++) b[i] = (sector * 31 + version * 17 + run + i) & 0xff;
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, sector, true);
  v.setUint32(8, version, true);
  v.setUint32(12, run, true);
  v.setUint32(16, fnv1a(b.subarray(DATA)), true);
  return b;
}

/** What a sector holds: blank (zeroes), a rehearsal's write (its run and version), or corruption. */
export function inspectSector(sector: number, b: Uint8Array): 'blank' | 'corrupt' | { run: number; version: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  if (b.every((x) => x === 0)) return 'blank';
  if (v.getUint32(0, true) !== MAGIC || v.getUint32(4, true) !== sector) return 'corrupt';
  if (v.getUint32(16, true) !== fnv1a(b.subarray(DATA))) return 'corrupt';
  return { run: v.getUint32(12, true), version: v.getUint32(8, true) };
}

/**
 * The version a sector holds for rehearsal `run`, or 'corrupt'; 0 for a sector this run never
 * wrote (zeroes, or an intact sector of another run).
 */
export function readVersion(sector: number, b: Uint8Array, run = 0): number | 'corrupt' {
  const got = inspectSector(sector, b);
  if (got === 'blank') return 0;
  if (got === 'corrupt') return 'corrupt';
  return got.run === run ? got.version : 0;
}

export class BlkWorkload extends DriverWorkload implements Workload {
  readonly kind = 'blk';
  submitted = 0;
  completed = 0;
  verifyRequests = 0;
  readonly problems: Verdict = { lost: 0, duplicated: 0, corrupted: 0 };
  private readonly latest: Uint32Array;
  private readonly nextVersion: Uint32Array;
  private readonly busy: Uint8Array;
  /** Logical blocks the rehearsal uses (the first 1024 at most). */
  private readonly blocks: number;
  /** Tells this rehearsal's sectors from an earlier one's on the same disk. */
  private readonly run = (Math.random() * 0xffffffff) >>> 0 || 1;

  /** 512-byte sectors per logical block (blk_size). */
  private readonly blockSectors: number;

  constructor(private readonly blk: BlkDriver, private readonly rng: Random, blocks = 1024) {
    super(blk);
    if (blk.readOnly) {
      throw new UsageError('E_INVALID_ARGUMENT', `${blk.device.address} is read-only (VIRTIO_BLK_F_RO): a rehearsal writes to it`,
        'rehearse on a writable device (a scratch disk)');
    }
    this.blockSectors = blk.limits.blockSize / BLK_SECTOR_SIZE;
    this.blocks = Math.min(blocks, Math.floor(blk.capacitySectors / this.blockSectors));
    this.latest = new Uint32Array(this.blocks);
    this.nextVersion = new Uint32Array(this.blocks).fill(1);
    this.busy = new Uint8Array(this.blocks);
  }

  /** At most one request per block is in flight: no more in flight than blocks. */
  get maxInflight(): number {
    return this.blocks;
  }

  /** A block with nothing in flight (random, then the next free one). */
  private pickBlock(): number {
    let s = randomInt(this.rng, 0, this.blocks - 1);
    for (let i = 0; i < this.blocks && this.busy[s]; i++) s = (s + 1) % this.blocks;
    return s;
  }

  async issue(): Promise<void> {
    const block = this.pickBlock();
    const sector = block * this.blockSectors;
    this.busy[block] = 1;
    this.submitted++;
    try {
      if (this.latest[block]! > 0 && this.rng() < 0.25) {
        this.check(block, await this.blk.read(sector, this.blockSectors));
      } else {
        const version = this.nextVersion[block]!++;
        await this.blk.write(sector, sectorPayload(sector, version, this.run, this.blockSectors * BLK_SECTOR_SIZE));
        this.latest[block] = version;
      }
      this.completed++;
    } finally {
      this.busy[block] = 0;
    }
  }

  /** A block this rehearsal wrote must hold its latest version; one it never wrote is not judged. */
  private judge(block: number, data: Uint8Array, v: Verdict): void {
    const latest = this.latest[block]!;
    if (latest === 0) return;
    const got = readVersion(block * this.blockSectors, data, this.run);
    if (got === 'corrupt' || got > latest) v.corrupted++;
    else if (got < latest) v.lost++;
  }

  private check(block: number, data: Uint8Array): void {
    this.judge(block, data, this.problems);
  }

  async verify(): Promise<Verdict> {
    const v = { ...this.problems };
    const checkBlock = async (b: number): Promise<void> => {
      if (this.latest[b] === 0) return;
      this.verifyRequests++;
      this.judge(b, await this.blk.read(b * this.blockSectors, this.blockSectors), v);
    };
    for (let first = 0; first < this.blocks; first += 64) {
      const batch = [];
      for (let b = first; b < Math.min(first + 64, this.blocks); b++) batch.push(checkBlock(b));
      await Promise.all(batch);
    }
    return v;
  }
}

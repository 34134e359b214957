// The blk rehearsal workload: versioned, checksummed single-sector writes and checked reads.
//
// Each sector carries { magic, sector, version, run, checksum } and data derived from them; `run`
// tells this rehearsal's sectors from those an earlier one left on the same disk. At most one
// request per sector is in flight, so "the latest completed version" of a sector is well defined:
//   corrupted  a sector whose checksum, magic or sector number is wrong
//   lost       a sector older than the latest completed write to it (the write is not there, or an
//              older write was done again after it)
//   duplicated requests the device carried out more often than the driver saw them complete
//              (counted by the reference device; on other devices replays show up as `lost`)

import { BLK_SECTOR_SIZE } from '../../lib/virtio/constants.js';
import type { BlkDriver } from '../../drivers/blk/index.js';
import { fnv1a, randomInt, type Random } from './random.js';
import { DriverWorkload, type Verdict, type Workload } from './workload.js';

const MAGIC = 0x55565248; // "UVRH"

const DATA = 20;

export function sectorPayload(sector: number, version: number, run = 0): Uint8Array {
  const b = new Uint8Array(BLK_SECTOR_SIZE);
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
  private readonly sectors: number;
  /** Tells this rehearsal's sectors from an earlier one's on the same disk. */
  private readonly run = (Math.random() * 0xffffffff) >>> 0 || 1;

  constructor(private readonly blk: BlkDriver, private readonly rng: Random, sectors = 1024) {
    super(blk);
    this.sectors = Math.min(sectors, blk.capacitySectors);
    this.latest = new Uint32Array(this.sectors);
    this.nextVersion = new Uint32Array(this.sectors).fill(1);
    this.busy = new Uint8Array(this.sectors);
  }

  /** A sector with nothing in flight (random, then the next free one). */
  private pickSector(): number {
    let s = randomInt(this.rng, 0, this.sectors - 1);
    for (let i = 0; i < this.sectors && this.busy[s]; i++) s = (s + 1) % this.sectors;
    return s;
  }

  async issue(): Promise<void> {
    const sector = this.pickSector();
    this.busy[sector] = 1;
    this.submitted++;
    try {
      if (this.latest[sector]! > 0 && this.rng() < 0.25) {
        this.check(sector, await this.blk.read(sector, 1));
      } else {
        const version = this.nextVersion[sector]!++;
        await this.blk.write(sector, sectorPayload(sector, version, this.run));
        this.latest[sector] = version;
      }
      this.completed++;
    } finally {
      this.busy[sector] = 0;
    }
  }

  private check(sector: number, data: Uint8Array): void {
    const got = readVersion(sector, data, this.run);
    if (got === 'corrupt' || got > this.latest[sector]!) this.problems.corrupted++;
    else if (got < this.latest[sector]!) this.problems.lost++;
  }

  async verify(): Promise<Verdict> {
    const v = { ...this.problems };
    const checkSector = async (s: number): Promise<void> => {
      this.verifyRequests++;
      const got = readVersion(s, await this.blk.read(s, 1), this.run);
      if (got === 'corrupt' || got > this.latest[s]!) v.corrupted++;
      else if (got < this.latest[s]!) v.lost++;
    };
    for (let first = 0; first < this.sectors; first += 64) {
      const batch = [];
      for (let s = first; s < Math.min(first + 64, this.sectors); s++) batch.push(checkSector(s));
      await Promise.all(batch);
    }
    return v;
  }
}

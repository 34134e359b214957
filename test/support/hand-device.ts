// A device "by hand" for queue tests: reads what the driver made available straight out of the ring
// memory (through GuestMemory.view, as a device would through its IOMMU) and writes used entries
// exactly as the test says, hostile ones included. It throws on anything the driver got wrong, so
// a driver bug fails the test that exercised it. It is deliberately independent of lib/virtio/queue
// (it shares only the spec constants) and of the reference device in lib/sim.

import fc from 'fast-check';
import type { GuestMemory } from '../../lib/mem/dma.js';
import { DescFlag, PackedFlag } from '../../lib/spec/index.js';
import type { QueueAddresses, Segment, Virtqueue } from '../../lib/virtio/queue/types.js';

/** A segment at a made-up address (the hand devices only look at the numbers). */
export const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });
/** `n` segments of `len` bytes, 4 KiB apart from `base`. */
export const segs = (n: number, base: number, len = 64): Segment[] => Array.from({ length: n }, (_, i) => seg(base + i * 0x1000, len));

export interface DeviceSegment {
  addr: bigint;
  len: number;
  write: boolean;
}

/** A chain as the device found it. */
export interface DeviceChain {
  /** Split: head descriptor index. Packed: buffer id. */
  id: number;
  segments: DeviceSegment[];
  /** Descriptors the chain takes in the ring (1 when indirect). */
  ringDescs: number;
  indirect: boolean;
  /** Total bytes of the writable segments. */
  writable: number;
}

interface QueueView {
  readonly addresses: QueueAddresses;
  readonly size: number;
}

class Memory {
  constructor(private readonly mem: GuestMemory) {}
  at(addr: bigint, len: number): DataView {
    const bytes = this.mem.view(addr, len);
    return new DataView(bytes.buffer, bytes.byteOffset, len);
  }
  u16(addr: bigint): number {
    return this.at(addr, 2).getUint16(0, true);
  }
  setU16(addr: bigint, v: number): void {
    this.at(addr, 2).setUint16(0, v, true);
  }
}

function chainOf(id: number, segments: DeviceSegment[], ringDescs: number, indirect: boolean): DeviceChain {
  const firstWrite = segments.findIndex((s) => s.write);
  if (firstWrite >= 0 && segments.slice(firstWrite).some((s) => !s.write)) {
    throw new Error(`driver bug: chain ${id} has a readable segment after a writable one`);
  }
  const writable = segments.filter((s) => s.write).reduce((n, s) => n + s.len, 0);
  return { id, segments, ringDescs, indirect, writable };
}

/** virtio 1.2 §2.7, device side. */
export class SplitHandDevice {
  /** Next available ring index the device will read, and the used idx it will write next. */
  lastAvail = 0;
  usedIdx = 0;
  private readonly m: Memory;

  constructor(mem: GuestMemory, private readonly q: QueueView) {
    this.m = new Memory(mem);
  }

  get availFlags(): number { return this.m.u16(this.q.addresses.driver); }
  get availIdx(): number { return this.m.u16(this.q.addresses.driver + 2n); }
  get usedEvent(): number { return this.m.u16(this.q.addresses.driver + 4n + 2n * BigInt(this.q.size)); }
  get usedIdxInMemory(): number { return this.m.u16(this.q.addresses.device + 2n); }

  setUsedFlags(flags: number): void { this.m.setU16(this.q.addresses.device, flags); }
  setAvailEvent(v: number): void { this.m.setU16(this.q.addresses.device + 4n + 8n * BigInt(this.q.size), v); }
  /** Writes used->idx as is (a hostile device may jump). */
  setUsedIdx(v: number): void { this.m.setU16(this.q.addresses.device + 2n, v & 0xffff); }

  /** The next chain the driver published, or null. */
  takeAvail(): DeviceChain | null {
    if (this.lastAvail === this.availIdx) return null;
    const slot = this.lastAvail % this.q.size;
    const head = this.m.u16(this.q.addresses.driver + 4n + 2n * BigInt(slot));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.q.size) throw new Error(`driver bug: avail ring names descriptor ${head}`);
    const first = this.desc(this.q.addresses.desc, head);
    if (first.flags & DescFlag.INDIRECT) {
      if (first.flags & DescFlag.NEXT) throw new Error('driver bug: INDIRECT together with NEXT');
      if (first.len === 0 || first.len % 16 !== 0) throw new Error(`driver bug: indirect table of ${first.len} bytes`);
      return chainOf(head, this.walk(first.addr, first.len / 16, 0, true), 1, true);
    }
    const segments = this.walk(this.q.addresses.desc, this.q.size, head, false);
    return chainOf(head, segments, segments.length, false);
  }

  takeAll(): DeviceChain[] {
    const chains: DeviceChain[] = [];
    for (let c = this.takeAvail(); c; c = this.takeAvail()) chains.push(c);
    return chains;
  }

  /** Writes a used element for `chain` and publishes it. */
  complete(chain: Pick<DeviceChain, 'id'>, len: number): void {
    this.writeUsedElem(this.usedIdx, chain.id, len);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.setUsedIdx(this.usedIdx);
  }

  /** Writes used->ring[index % size] without publishing it. */
  writeUsedElem(index: number, id: number, len: number): void {
    const at = this.m.at(this.q.addresses.device + 4n + 8n * BigInt(index % this.q.size), 8);
    at.setUint32(0, id, true);
    at.setUint32(4, len, true);
  }

  private desc(table: bigint, i: number): { addr: bigint; len: number; flags: number; next: number } {
    const d = this.m.at(table + 16n * BigInt(i), 16);
    return { addr: d.getBigUint64(0, true), len: d.getUint32(8, true), flags: d.getUint16(12, true), next: d.getUint16(14, true) };
  }

  private walk(table: bigint, entries: number, start: number, inIndirect: boolean): DeviceSegment[] {
    const segments: DeviceSegment[] = [];
    for (let i = start; ; ) {
      if (segments.length === entries) throw new Error('driver bug: descriptor chain loops or exceeds its table');
      const d = this.desc(table, i);
      if (d.flags & DescFlag.INDIRECT) throw new Error(inIndirect ? 'driver bug: nested indirect table' : 'driver bug: INDIRECT inside a chain');
      segments.push({ addr: d.addr, len: d.len, write: (d.flags & DescFlag.WRITE) !== 0 });
      if (!(d.flags & DescFlag.NEXT)) return segments;
      if (d.next >= entries) throw new Error(`driver bug: next ${d.next} outside a table of ${entries}`);
      i = d.next;
    }
  }
}

/** virtio 1.2 §2.8, device side. */
export class PackedHandDevice {
  /** Next slot the device reads and the wrap counter it expects there; next slot it marks used and its Device Ring Wrap Counter. */
  nextAvail = 0;
  availWrap = true;
  nextUsed = 0;
  usedWrap = true;
  private readonly m: Memory;

  constructor(mem: GuestMemory, private readonly q: QueueView) {
    this.m = new Memory(mem);
  }

  /** Driver Event Suppression structure: {offWrap, flags}. */
  get driverEvent(): { off: number; wrap: boolean; flags: number } {
    const offWrap = this.m.u16(this.q.addresses.driver);
    return { off: offWrap & 0x7fff, wrap: offWrap >= 0x8000, flags: this.m.u16(this.q.addresses.driver + 2n) };
  }

  setDeviceEvent(flags: number, off = 0, wrap = true): void {
    this.m.setU16(this.q.addresses.device, off | (wrap ? 0x8000 : 0));
    this.m.setU16(this.q.addresses.device + 2n, flags);
  }

  /** The next buffer the driver made available, or null. */
  takeAvail(): DeviceChain | null {
    if (!this.isAvailable(this.readFlags(this.nextAvail), this.availWrap)) return null;
    const descs: { addr: bigint; len: number; id: number; flags: number }[] = [];
    for (;;) {
      if (descs.length === this.q.size) throw new Error('driver bug: descriptor list longer than the ring');
      const d = this.desc(this.q.addresses.desc, this.nextAvail);
      if (!this.isAvailable(d.flags, this.availWrap)) {
        throw new Error(`driver bug: descriptor ${this.nextAvail} of a list is not available (flags 0x${d.flags.toString(16)})`);
      }
      descs.push(d);
      if (++this.nextAvail === this.q.size) {
        this.nextAvail = 0;
        this.availWrap = !this.availWrap;
      }
      if (!(d.flags & PackedFlag.NEXT)) break;
    }
    const last = descs[descs.length - 1]!;
    if (last.flags & PackedFlag.INDIRECT) {
      if (descs.length !== 1) throw new Error('driver bug: INDIRECT inside a list linked by NEXT');
      if (last.len === 0 || last.len % 16 !== 0) throw new Error(`driver bug: indirect table of ${last.len} bytes`);
      const segments: DeviceSegment[] = [];
      for (let i = 0; i < last.len / 16; i++) {
        const d = this.desc(last.addr, i);
        if (d.flags & ~PackedFlag.WRITE) throw new Error(`driver bug: indirect entry ${i} has flags 0x${d.flags.toString(16)} (only WRITE is valid)`);
        segments.push({ addr: d.addr, len: d.len, write: (d.flags & PackedFlag.WRITE) !== 0 });
      }
      return chainOf(last.id, segments, 1, true);
    }
    const segments = descs.map((d) => ({ addr: d.addr, len: d.len, write: (d.flags & PackedFlag.WRITE) !== 0 }));
    return chainOf(last.id, segments, descs.length, false);
  }

  takeAll(): DeviceChain[] {
    const chains: DeviceChain[] = [];
    for (let c = this.takeAvail(); c; c = this.takeAvail()) chains.push(c);
    return chains;
  }

  /** Writes the used descriptor for `chain` (one per buffer, §2.8.6) and skips its descriptors. */
  complete(chain: Pick<DeviceChain, 'id' | 'ringDescs'>, len: number): void {
    this.writeUsedRaw(this.nextUsed, chain.id, len, this.usedFlags() | (len > 0 ? PackedFlag.WRITE : 0));
    this.nextUsed += chain.ringDescs;
    if (this.nextUsed >= this.q.size) {
      this.nextUsed -= this.q.size;
      this.usedWrap = !this.usedWrap;
    }
  }

  /** Writes id and len, then flags, at `slot`, exactly as given. */
  writeUsedRaw(slot: number, id: number, len: number, flags: number): void {
    const d = this.m.at(this.q.addresses.desc + 16n * BigInt(slot), 16);
    d.setUint32(8, len, true);
    d.setUint16(12, id, true);
    d.setUint16(14, flags, true);
  }

  /** AVAIL and USED the way the device sets them when marking used (§2.8.1). */
  usedFlags(): number {
    return this.usedWrap ? PackedFlag.AVAIL | PackedFlag.USED : 0;
  }

  private isAvailable(flags: number, wrap: boolean): boolean {
    return ((flags & PackedFlag.AVAIL) !== 0) === wrap && ((flags & PackedFlag.USED) !== 0) !== wrap;
  }

  private readFlags(slot: number): number {
    return this.m.u16(this.q.addresses.desc + 16n * BigInt(slot) + 14n);
  }

  private desc(table: bigint, i: number): { addr: bigint; len: number; id: number; flags: number } {
    const d = this.m.at(table + 16n * BigInt(i), 16);
    return { addr: d.getBigUint64(0, true), len: d.getUint32(8, true), id: d.getUint16(12, true), flags: d.getUint16(14, true) };
  }
}

/** What the random-interleaving check needs of either hand device. */
export interface HandDevice {
  takeAll(): DeviceChain[];
  complete(chain: DeviceChain, len: number): void;
}

/** One step of a random interleaving: add a chain, complete one the device holds, or pop used. */
export type Step =
  | { kind: 'add'; readable: number; writable: number; lens: number[] }
  | { kind: 'complete'; pick: number; fraction: number }
  | { kind: 'pop' };

export const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('add' as const),
    readable: fc.nat(3),
    writable: fc.nat(3),
    lens: fc.array(fc.integer({ min: 1, max: 1 << 16 }), { minLength: 6, maxLength: 6 }),
  }),
  fc.record({ kind: fc.constant('complete' as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.constant({ kind: 'pop' as const }),
);

/** Chains carry their token in the top bits of every segment address, so the device can name them. */
const TOKEN_SHIFT = 24n;

/**
 * Runs `steps` against a queue and a hand device, then completes everything left, and checks that
 * every token came back exactly once with the length the device reported. Throws on any mismatch.
 */
export function runInterleaving(vq: Virtqueue<number>, dev: HandDevice, steps: readonly Step[]): void {
  const sent = new Map<number, number>(); // token → writable bytes
  const reported = new Map<number, number>(); // token → len the device wrote
  const returned = new Set<number>();
  const held: DeviceChain[] = [];
  let nextToken = 1;

  const pop = (): void => {
    for (let u = vq.popUsed(); u; u = vq.popUsed()) {
      if (returned.has(u.token)) throw new Error(`token ${u.token} came back twice`);
      if (reported.get(u.token) !== u.len) throw new Error(`token ${u.token}: len ${u.len}, device wrote ${reported.get(u.token)}`);
      returned.add(u.token);
    }
  };
  const complete = (index: number, fraction: number): void => {
    const [chain] = held.splice(index, 1);
    const len = Math.floor(fraction * chain!.writable);
    reported.set(Number(chain!.segments[0]!.addr >> TOKEN_SHIFT), len);
    dev.complete(chain!, len);
  };

  for (const step of steps) {
    if (step.kind === 'add') {
      const total = Math.min(step.readable + step.writable, vq.size);
      const readable = Math.min(step.readable, total);
      const writable = Math.max(total - readable, readable === 0 ? 1 : 0);
      const token = nextToken;
      const segs = step.lens.slice(0, readable + writable).map((len, i) => ({ addr: (BigInt(token) << TOKEN_SHIFT) + BigInt(i * 0x1000), len }));
      if (!vq.canAdd(readable, writable)) {
        expectFull(() => vq.add(segs.slice(0, readable), segs.slice(readable), token));
        continue;
      }
      vq.add(segs.slice(0, readable), segs.slice(readable), token);
      vq.kick();
      sent.set(token, segs.slice(readable).reduce((n, s) => n + s.len, 0));
      nextToken++;
    } else if (step.kind === 'complete') {
      held.push(...dev.takeAll());
      if (held.length > 0) complete(step.pick % held.length, step.fraction);
    } else {
      pop();
    }
  }
  for (;;) {
    held.push(...dev.takeAll());
    if (held.length === 0) break;
    while (held.length > 0) complete(0, 0.5);
    pop();
  }
  pop();
  if (returned.size !== sent.size) throw new Error(`${sent.size} chains sent, ${returned.size} returned`);
  if (vq.inFlight !== 0 || vq.numFree !== vq.size) throw new Error(`queue not empty: ${vq.inFlight} in flight, ${vq.numFree} free`);
}

function expectFull(add: () => void): void {
  try {
    add();
  } catch (e) {
    if ((e as { code?: string }).code === 'E_QUEUE_FULL') return;
    throw e;
  }
  throw new Error('add succeeded although canAdd said no');
}

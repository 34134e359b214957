// Packed virtqueue (virtio 1.2 §2.8): one descriptor ring shared by driver and device, wrap
// counters instead of indices, and an event suppression structure for each direction.
//
// Buffer ids come from a free list of descriptor entries (a chain's first entry is its id, as in
// Linux); the device returns one used descriptor per buffer, carrying its id, and both sides then
// skip the number of descriptors the buffer took (§2.8.6), which the driver recorded when it added
// the buffer. Device-written fields are read once and checked.

import { PACKED_MAX_SIZE, PackedAlign, PackedDesc, PackedEventFlag, PackedFlag, packPackedState } from '../../spec/index.js';
import { UsageError } from '../../errors.js';
import { QueueCore, needsEvent } from './core.js';
import type { QueueAddresses, Segment, UsedElement, Virtqueue, VirtqueueOptions } from './types.js';

const EVENT_WRAP = 0x8000; // struct pvirtq_event_suppress: desc_event_wrap is bit 15 of desc (§2.8.14)
const EVENT_FLAGS_MASK = 0x3;
const WORDS_PER_DESC = PackedDesc.SIZE >> 1;
const FLAGS_WORD = PackedDesc.FLAGS >> 1;

/** Bytes of the ring: descriptors (align 16), then driver and device event structures (align 4). */
function packedBytes(size: number): number {
  if (!Number.isInteger(size) || size < 1 || size > PACKED_MAX_SIZE) {
    throw new UsageError('E_INVALID_ARGUMENT', `a packed queue size must be an integer 1..${PACKED_MAX_SIZE}, got ${size}`);
  }
  return PackedDesc.SIZE * size + 8;
}

/** AVAIL and USED as the driver sets them to make a descriptor available (§2.8.1). */
function availBits(wrap: boolean): number {
  return wrap ? PackedFlag.AVAIL : PackedFlag.USED;
}

export class PackedVirtqueue<T = unknown> extends QueueCore<T> implements Virtqueue<T> {
  readonly layout = 'packed';
  readonly addresses: QueueAddresses;

  // Event suppression fields, as 16-bit word indices into ring16.
  private readonly driverOffWrapAt: number;
  private readonly driverFlagsAt: number;
  private readonly deviceOffWrapAt: number;
  private readonly deviceFlagsAt: number;

  /**
   * Descriptor entries, one per descriptor a chain takes (Linux virtio_ring.c's desc_extra): the
   * address and length each was written with, kept because a used descriptor overwrites its ring
   * slot — which may hold a descriptor of another chain still in flight (§2.8.6: out of order) —
   * so that free() can tell what a chain in flight still points at. Free entries and each chain's
   * entries are linked through nextFree; a chain's first entry is its buffer id, and lastOf[id]
   * its last, so that popUsed gives the chain back in one step.
   */
  private readonly nextFree: Uint16Array;
  private freeHead = 0;
  private readonly lastOf: Uint16Array;
  private readonly shadowAddr: bigint[];
  private readonly shadowLen: Uint32Array;
  /** Next slot to fill and the Driver Ring Wrap Counter (§2.8.1). */
  private nextAvail = 0;
  private availWrap = true;
  /** Next slot to poll for a used descriptor and the driver's copy of the device's wrap counter. */
  private lastUsed = 0;
  private usedWrap = true;
  /** Ring position (see position()) at the last kick, and descriptors made available since. */
  private kickedPos = 0;
  private addedSinceKick = 0;

  constructor(opts: VirtqueueOptions) {
    const bytes = packedBytes(opts.size);
    super(opts, bytes, PackedAlign.DESC);
    const iova = this.region.iova;
    const events = PackedDesc.SIZE * this.size;
    this.addresses = { desc: iova, driver: iova + BigInt(events), device: iova + BigInt(events + 4) };
    this.driverOffWrapAt = events >> 1;
    this.driverFlagsAt = this.driverOffWrapAt + 1;
    this.deviceOffWrapAt = this.driverOffWrapAt + 2;
    this.deviceFlagsAt = this.driverOffWrapAt + 3;
    this.nextFree = new Uint16Array(this.size);
    this.lastOf = new Uint16Array(this.size);
    this.shadowAddr = new Array<bigint>(this.size).fill(0n);
    this.shadowLen = new Uint32Array(this.size);
    this.restartRing();
  }

  /** virtio 1.2 §2.8.21.1: every descriptor of the chain, then the head's flags, which publish it. */
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): void {
    const writableBytes = this.checkChain(readable, writable);
    // From here on only the chain as checkChain read it (chainAddr, chainLen): the caller's objects are not read again.
    const segments = this.chainSegments;
    const readableCount = this.chainReadable;
    const table = this.reserve(segments);
    const descs = table ? 1 : segments;

    const id = this.freeHead;
    const head = this.nextAvail;
    let headFlags: number;
    if (table) {
      // §2.8.7: table entries carry only WRITE (their id is ignored); the ring descriptor carries
      // INDIRECT and no NEXT (§2.8.19).
      for (let i = 0; i < segments; i++) {
        writeDesc(table.view, i, this.chainAddr[i]!, this.chainLen[i]!, 0, i < readableCount ? 0 : PackedFlag.WRITE);
      }
      writeBody(this.ring, head, table.iova, PackedDesc.SIZE * segments, id);
      this.shadowAddr[id] = table.iova;
      this.shadowLen[id] = PackedDesc.SIZE * segments;
      this.lastOf[id] = id;
      this.freeHead = this.nextFree[id]!;
      headFlags = PackedFlag.INDIRECT | availBits(this.availWrap);
      this.advanceAvail();
    } else {
      headFlags = 0;
      const ring64 = this.ring64;
      const shadowAddr = this.shadowAddr;
      const shadowLen = this.shadowLen;
      let e = id;
      let last = id;
      for (let i = 0; i < segments; i++) {
        const addr = this.chainAddr[i]!;
        const len = this.chainLen[i]!;
        const flags = (i < readableCount ? 0 : PackedFlag.WRITE) | (i < segments - 1 ? PackedFlag.NEXT : 0) | availBits(this.availWrap);
        const d = this.nextAvail;
        if (ring64 !== null) {
          // struct pvirtq_desc as words: addr = 64-bit word 2d, len = 32-bit word 4d+2, id and
          // flags = 16-bit words 8d+6 and 8d+7 (PackedDesc offsets 0, 8, 12, 14).
          ring64[2 * d] = addr;
          this.ring32![4 * d + 2] = len;
          this.ring16[8 * d + 6] = id;
          if (i !== 0) this.ring16[8 * d + 7] = flags;
        } else if (i === 0) {
          writeBody(this.ring, d, addr, len, id);
        } else {
          writeDesc(this.ring, d, addr, len, id, flags);
        }
        shadowAddr[e] = addr;
        shadowLen[e] = len;
        last = e;
        e = this.nextFree[e]!;
        if (i === 0) headFlags = flags;
        this.advanceAvail();
      }
      this.lastOf[id] = last;
      this.freeHead = e;
    }
    this.track(id, token, descs, writableBytes, table);
    this.addedSinceKick += descs;
    Atomics.store(this.ring16, head * WORDS_PER_DESC + FLAGS_WORD, headFlags); // §2.8.21.1.1: flags last
  }

  /** virtio 1.2 §2.8.21.2 and §2.8.10: consult the Device Event Suppression structure. */
  kick(): boolean {
    if (this.broken || this.addedSinceKick === 0) return false;
    const old = this.kickedPos;
    const now = this.position(this.nextAvail, this.availWrap);
    const added = this.addedSinceKick;
    this.kickedPos = now;
    this.addedSinceKick = 0;
    const flags = Atomics.load(this.ring16, this.deviceFlagsAt) & EVENT_FLAGS_MASK;
    let notify = flags !== PackedEventFlag.DISABLE;
    // DESC is only valid with EVENT_IDX; the reserved value, a DESC without it, an offset outside
    // the ring, or more than one full window since the last kick all notify: a spurious
    // notification is always allowed, a missing one would stall the device.
    if (flags === PackedEventFlag.DESC && this.features.eventIdx && added < 2 * this.size) {
      const offWrap = Atomics.load(this.ring16, this.deviceOffWrapAt);
      const off = offWrap & ~EVENT_WRAP;
      const m = 2 * this.size;
      const event = this.position(off, offWrap >= EVENT_WRAP);
      // §2.8.10 notifies when this kick made the event's descriptor available. An event this kick
      // did not cover, and that the driver cannot reach with the descriptors still free (one it
      // passed before the last kick, or beyond the free slots), would be reached only after the
      // device uses something — a device waiting for that notification would wait for ever (QEMU
      // 7.2's packed virtio-net transmit was seen doing it with a full ring: bench/README.md).
      // Notify then too: spurious for a device that is only busy, never a stall.
      notify = off >= this.size || needsEvent(event, now, old, m) || (event - now + m) % m >= this.free;
    }
    if (notify) this.notifyDevice();
    return notify;
  }

  /** virtio 1.2 §2.8.22, with every value the device wrote checked. */
  popUsed(): UsedElement<T> | null {
    this.assertNotBroken();
    // With nothing in flight the polled slot holds stale descriptors of an earlier lap.
    if (this.inFlight === 0) return null;
    const slot = this.lastUsed;
    const flags = Atomics.load(this.ring16, slot * WORDS_PER_DESC + FLAGS_WORD);
    const used = (flags & PackedFlag.USED) !== 0;
    if (used !== this.usedWrap) return null;
    if (((flags & PackedFlag.AVAIL) !== 0) !== used) {
      throw this.deviceFault('E_DEVICE_BAD_PACKED_FLAGS', `descriptor ${slot} has USED set to the used wrap counter but AVAIL differs (flags 0x${flags.toString(16)})`);
    }
    const at = slot * PackedDesc.SIZE;
    const id = this.ring16[slot * WORDS_PER_DESC + (PackedDesc.ID >> 1)]!;
    // §2.8.4 says the device sets WRITE when it wrote data, but devices in the field do not (QEMU
    // 7.2 never does), so the length is read either way — and still checked against the writable
    // bytes, which is what makes it safe to use.
    const ring32 = this.ring32;
    const len = ring32 !== null ? ring32[(at + PackedDesc.LEN) >> 2]! : this.ring.getUint32(at + PackedDesc.LEN, true);
    if (!this.isLive(id)) {
      throw this.deviceFault('E_DEVICE_BAD_USED_ID', `used descriptor ${slot} names buffer id ${id}, which is not in flight`);
    }
    if (len > this.writableIn(id)) {
      throw this.deviceFault('E_DEVICE_BAD_USED_LEN', `used descriptor ${slot} reports ${len} bytes written into a buffer with ${this.writableIn(id)} writable bytes`);
    }
    const descs = this.descsIn(id);
    const token = this.release(id);
    this.nextFree[this.lastOf[id]!] = this.freeHead;
    this.freeHead = id;
    this.lastUsed += descs;
    if (this.lastUsed >= this.size) {
      this.lastUsed -= this.size;
      this.usedWrap = !this.usedWrap;
    }
    if (this.features.eventIdx && this.interruptsWanted) this.askForUsedEventAtNext();
    return { token, len };
  }

  /** A packed ring has no avail/used indices in memory (virtio 1.2 §2.8): undefined. */
  splitIndices(): undefined {
    return undefined;
  }

  usedPending(): boolean {
    if (this.inFlight === 0) return false;
    const flags = Atomics.load(this.ring16, this.lastUsed * WORDS_PER_DESC + FLAGS_WORD);
    return ((flags & PackedFlag.USED) !== 0) === this.usedWrap;
  }

  /** virtio 1.2 §2.8.10: ENABLE, or with EVENT_IDX a DESC event at the next used descriptor. */
  enableInterrupts(): boolean {
    if (this.broken) return true;
    this.interruptsWanted = true;
    if (this.features.eventIdx) {
      this.askForUsedEventAtNext();
      Atomics.store(this.ring16, this.driverFlagsAt, PackedEventFlag.DESC);
    } else {
      Atomics.store(this.ring16, this.driverFlagsAt, PackedEventFlag.ENABLE);
    }
    // Re-read after the store: a descriptor used before it may have raised no notification.
    if (this.inFlight === 0) return true;
    const flags = Atomics.load(this.ring16, this.lastUsed * WORDS_PER_DESC + FLAGS_WORD);
    return ((flags & PackedFlag.USED) !== 0) !== this.usedWrap;
  }

  disableInterrupts(): void {
    if (this.broken) return;
    this.interruptsWanted = false;
    Atomics.store(this.ring16, this.driverFlagsAt, PackedEventFlag.DISABLE);
  }

  protected restartRing(): void {
    for (let i = 0; i < this.size; i++) this.nextFree[i] = i + 1;
    this.freeHead = 0;
    this.nextAvail = 0;
    this.availWrap = true;
    this.lastUsed = 0;
    this.usedWrap = true;
    this.kickedPos = 0;
    this.addedSinceKick = 0;
  }

  protected ringIndices(): { nextAvail: number; lastUsed: number } {
    return {
      nextAvail: packPackedState(this.nextAvail, this.availWrap),
      lastUsed: packPackedState(this.lastUsed, this.usedWrap),
    };
  }

  // The free() guard's view of a chain (QueueCore.usedBy): the shadow entries, never ring memory.
  protected entryAddr(e: number): bigint {
    return this.shadowAddr[e]!;
  }

  protected entryLen(e: number): number {
    return this.shadowLen[e]!;
  }

  protected entryNext(e: number): number {
    return this.nextFree[e]!;
  }

  private advanceAvail(): void {
    if (++this.nextAvail === this.size) {
      this.nextAvail = 0;
      this.availWrap = !this.availWrap; // §2.8.1: flip after the last slot
    }
  }

  private askForUsedEventAtNext(): void {
    Atomics.store(this.ring16, this.driverOffWrapAt, this.lastUsed | (this.usedWrap ? EVENT_WRAP : 0));
  }

  /**
   * A slot and wrap counter as one position modulo 2 × size: the lap with wrap counter 1 covers
   * 0..size-1, the lap with 0 covers size..2·size-1. EVENT_IDX windows are computed on these.
   */
  private position(slot: number, wrap: boolean): number {
    return wrap ? slot : slot + this.size;
  }
}

/** struct pvirtq_desc (virtio 1.2 §2.8.13) without its flags: addr, len, id. */
function writeBody(table: DataView, d: number, addr: bigint, len: number, id: number): void {
  const at = d * PackedDesc.SIZE;
  table.setBigUint64(at + PackedDesc.ADDR, addr, true);
  table.setUint32(at + PackedDesc.LEN, len, true);
  table.setUint16(at + PackedDesc.ID, id, true);
}

function writeDesc(table: DataView, d: number, addr: bigint, len: number, id: number, flags: number): void {
  writeBody(table, d, addr, len, id);
  table.setUint16(d * PackedDesc.SIZE + PackedDesc.FLAGS, flags, true);
}

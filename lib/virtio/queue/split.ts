// Split virtqueue (virtio 1.2 §2.7): a descriptor table, an available ring the driver writes and a
// used ring the device writes, with free-running 16-bit indices.
//
// The driver keeps its own copy of everything it needs (free list, chain lengths, indices) and reads
// only used->idx, the used elements and the notification suppression fields from device-writable
// memory, each once, each checked before use.

import { alignUp } from '../../mem/dma.js';
import { AvailFlag, DescFlag, SPLIT_MAX_SIZE, SplitAlign, SplitAvail, SplitDesc, SplitUsed, UsedFlag } from '../../spec/index.js';
import { UsageError } from '../../errors.js';
import { QueueCore, needsEvent } from './core.js';
import type { QueueAddresses, Segment, UsedElement, Virtqueue, VirtqueueOptions } from './types.js';
import type { SplitRingIndices } from '../../transport/state.js';

const U16 = 0x10000;

/** Byte offsets of the three areas in one region (virtio 1.2 §2.7: alignments 16, 2 and 4). */
function splitLayout(size: number): { avail: number; used: number; bytes: number } {
  if (!Number.isInteger(size) || size < 2 || size > SPLIT_MAX_SIZE || (size & (size - 1)) !== 0) {
    throw new UsageError('E_INVALID_ARGUMENT', `a split queue size must be a power of two 2..${SPLIT_MAX_SIZE}, got ${size}`);
  }
  const avail = SplitDesc.SIZE * size; // desc[size]
  // avail: flags, idx, ring[size], used_event (le16)
  const used = alignUp(avail + SplitAvail.RING + SplitAvail.ENTRY_SIZE * size + 2, SplitAlign.USED);
  // used: flags, idx, ring[size] of {id, len}, avail_event (le16)
  return { avail, used, bytes: used + SplitUsed.RING + SplitUsed.ELEM_SIZE * size + 2 };
}

export class SplitVirtqueue<T = unknown> extends QueueCore<T> implements Virtqueue<T> {
  readonly layout = 'split';
  readonly addresses: QueueAddresses;

  // Positions of the ring fields, as 16-bit word indices into ring16 (or bytes into ring).
  private readonly availFlagsAt: number;
  private readonly availIdxAt: number;
  private readonly availRingAt: number;
  private readonly usedEventAt: number;
  private readonly usedFlagsAt: number;
  private readonly usedIdxAt: number;
  private readonly usedRingByte: number;
  private readonly availEventAt: number;

  /** Free descriptors, linked through nextFree; a chain keeps the links it was allocated with. */
  private readonly nextFree: Uint16Array;
  private freeHead = 0;
  /** avail->idx as last published. */
  private availIdx = 0;
  /** avail->idx at the last kick, and chains added since (the EVENT_IDX window). */
  private kickedIdx = 0;
  private addedSinceKick = 0;
  /** The used index the driver has consumed up to. */
  private lastUsed = 0;
  /**
   * used->idx as last read (and checked) by popUsed: the elements before it are known written, so
   * popUsed reads device memory for the index again only when it has consumed up to it (one
   * Atomics.load per batch of used elements rather than per element).
   */
  private seenUsedIdx = 0;

  constructor(opts: VirtqueueOptions) {
    const layout = splitLayout(opts.size);
    super(opts, layout.bytes, SplitAlign.DESC);
    const iova = this.region.iova;
    this.addresses = { desc: iova, driver: iova + BigInt(layout.avail), device: iova + BigInt(layout.used) };
    this.availFlagsAt = (layout.avail + SplitAvail.FLAGS) >> 1;
    this.availIdxAt = (layout.avail + SplitAvail.IDX) >> 1;
    this.availRingAt = (layout.avail + SplitAvail.RING) >> 1;
    this.usedEventAt = this.availRingAt + this.size;
    this.usedFlagsAt = (layout.used + SplitUsed.FLAGS) >> 1;
    this.usedIdxAt = (layout.used + SplitUsed.IDX) >> 1;
    this.usedRingByte = layout.used + SplitUsed.RING;
    this.availEventAt = (this.usedRingByte + SplitUsed.ELEM_SIZE * this.size) >> 1;
    this.nextFree = new Uint16Array(this.size);
    this.restartRing();
  }

  /** virtio 1.2 §2.7.13: descriptors, then the available ring entry, then avail->idx. */
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): void {
    const writableBytes = this.checkChain(readable, writable);
    // From here on only the chain as checkChain read it (chainAddr, chainLen): the caller's objects are not read again.
    const segments = this.chainSegments;
    const table = this.reserve(segments);
    const descs = table ? 1 : segments;

    const head = this.freeHead;
    if (table) {
      // §2.7.5.3: the table is an ordinary chain linked 0, 1, 2…; the ring descriptor has INDIRECT
      // and never NEXT (§2.7.5.3.1).
      for (let i = 0; i < segments; i++) this.writeSegment(table.view, i, i + 1, i);
      writeDesc(this.ring, head, table.iova, SplitDesc.SIZE * segments, DescFlag.INDIRECT, 0);
      this.freeHead = this.nextFree[head]!;
    } else {
      let d = head;
      for (let i = 0; i < segments; i++) {
        const next = this.nextFree[d]!;
        this.writeRingSegment(d, next, i);
        d = next;
      }
      this.freeHead = d;
    }
    this.track(head, token, descs, writableBytes, table);

    this.ring16[this.availRingAt + (this.availIdx & (this.size - 1))] = head;
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.addedSinceKick++;
    Atomics.store(this.ring16, this.availIdxAt, this.availIdx); // §2.7.13.3.1: after the ring entry
  }

  /** virtio 1.2 §2.7.13.4 and §2.7.10: notify unless the device suppressed it. */
  kick(): boolean {
    if (this.broken || this.addedSinceKick === 0) return false;
    const old = this.kickedIdx;
    const now = this.availIdx;
    const added = this.addedSinceKick;
    this.kickedIdx = now;
    this.addedSinceKick = 0;
    let notify: boolean;
    if (this.features.eventIdx) {
      // More than 2^16 chains since the last kick leaves the window ambiguous: notify.
      notify = added >= U16 || needsEvent(Atomics.load(this.ring16, this.availEventAt), now, old, U16);
    } else {
      notify = (Atomics.load(this.ring16, this.usedFlagsAt) & UsedFlag.NO_NOTIFY) === 0;
    }
    if (notify) this.notifyDevice();
    return notify;
  }

  /** virtio 1.2 §2.7.14, with every value the device wrote checked (§2.7.8). */
  popUsed(): UsedElement<T> | null {
    this.assertNotBroken();
    const lastUsed = this.lastUsed;
    let usedIdx = this.seenUsedIdx;
    if (usedIdx === lastUsed) {
      usedIdx = Atomics.load(this.ring16, this.usedIdxAt);
      if (usedIdx === lastUsed) return null;
      if (((usedIdx - lastUsed) & 0xffff) > this.inFlight) {
        throw this.deviceFault('E_DEVICE_USED_INDEX_JUMP',
          `used idx went from ${lastUsed} to ${usedIdx} with ${this.inFlight} chains in flight`);
      }
      this.seenUsedIdx = usedIdx;
    }
    const at = this.usedRingByte + 8 * (lastUsed & (this.size - 1));
    const ring32 = this.ring32;
    const id = ring32 !== null ? ring32[at >> 2]! : this.ring.getUint32(at, true);
    const len = ring32 !== null ? ring32[(at >> 2) + 1]! : this.ring.getUint32(at + 4, true);
    if (!this.isLive(id)) {
      throw this.deviceFault('E_DEVICE_BAD_USED_ID', `used element ${lastUsed} names descriptor ${id}, which is not the head of a chain in flight`);
    }
    if (len > this.writableIn(id)) {
      throw this.deviceFault('E_DEVICE_BAD_USED_LEN', `used element ${lastUsed} reports ${len} bytes written into a chain with ${this.writableIn(id)} writable bytes`);
    }
    const descs = this.descsIn(id);
    const token = this.release(id);
    this.freeChain(id, descs);
    this.lastUsed = (lastUsed + 1) & 0xffff;
    // §2.7.7: keep asking for a notification at the next used element while interrupts are wanted.
    if (this.features.eventIdx && this.interruptsWanted) Atomics.store(this.ring16, this.usedEventAt, this.lastUsed);
    return { token, len };
  }

  usedPending(): boolean {
    // Elements already seen (seenUsedIdx ahead) count too, not only what ring memory shows now.
    return this.seenUsedIdx !== this.lastUsed || Atomics.load(this.ring16, this.usedIdxAt) !== this.lastUsed;
  }

  /** virtio 1.2 §2.7.7: avail->flags without EVENT_IDX, used_event with it. */
  enableInterrupts(): boolean {
    if (this.broken) return true;
    this.interruptsWanted = true;
    if (this.features.eventIdx) Atomics.store(this.ring16, this.usedEventAt, this.lastUsed);
    else Atomics.store(this.ring16, this.availFlagsAt, 0);
    // Re-read after the store: a used element written before it may have raised no notification.
    return Atomics.load(this.ring16, this.usedIdxAt) === this.lastUsed;
  }

  disableInterrupts(): void {
    if (this.broken) return;
    this.interruptsWanted = false;
    // With EVENT_IDX flags must stay 0 (§2.7.7.1); an event index just behind lastUsed is reached
    // only after 2^16 more used elements, more than can ever be in flight.
    if (this.features.eventIdx) Atomics.store(this.ring16, this.usedEventAt, (this.lastUsed - 1) & 0xffff);
    else Atomics.store(this.ring16, this.availFlagsAt, AvailFlag.NO_INTERRUPT);
  }

  protected restartRing(): void {
    for (let i = 0; i < this.size; i++) this.nextFree[i] = i + 1;
    this.freeHead = 0;
    this.availIdx = 0;
    this.kickedIdx = 0;
    this.addedSinceKick = 0;
    this.lastUsed = 0;
    this.seenUsedIdx = 0;
  }

  /**
   * avail->idx and used->idx in this ring's memory (virtio 1.2 §2.7.6, §2.7.8), for a transport
   * that must watch a back-end finish the ring (vhost-user) without knowing the ring's layout.
   */
  splitIndices(): SplitRingIndices {
    return {
      availIdx: () => Atomics.load(this.ring16, this.availIdxAt),
      usedIdx: () => Atomics.load(this.ring16, this.usedIdxAt),
      setUsedIdx: (value: number) => {
        Atomics.store(this.ring16, this.usedIdxAt, value & 0xffff);
        // Forget what popUsed saw before the rewrite: the next pop reads (and checks) used->idx again.
        this.seenUsedIdx = this.lastUsed;
      },
    };
  }

  protected ringIndices(): { nextAvail: number; lastUsed: number } {
    return { nextAvail: this.availIdx, lastUsed: this.lastUsed };
  }

  // The free() guard's view of a chain (QueueCore.usedBy): descriptor d in the table in ring
  // memory, which only the driver writes (§2.7.5), linked by the driver's own nextFree.
  protected entryAddr(d: number): bigint {
    const ring64 = this.ring64;
    return ring64 !== null ? ring64[2 * d]! : this.ring.getBigUint64(d * SplitDesc.SIZE + SplitDesc.ADDR, true);
  }

  protected entryLen(d: number): number {
    return this.ring.getUint32(d * SplitDesc.SIZE + SplitDesc.LEN, true);
  }

  protected entryNext(d: number): number {
    return this.nextFree[d]!;
  }

  /** Writes segment `i` of the chain as descriptor `d` of `table`, linked to `next` unless it is the last. */
  private writeSegment(table: DataView, d: number, next: number, i: number): void {
    const last = i === this.chainSegments - 1;
    const flags = (i < this.chainReadable ? 0 : DescFlag.WRITE) | (last ? 0 : DescFlag.NEXT);
    writeDesc(table, d, this.chainAddr[i]!, this.chainLen[i]!, flags, last ? 0 : next);
  }

  /** writeSegment into the ring itself: through the typed-array views, or the DataView when there are none. */
  private writeRingSegment(d: number, next: number, i: number): void {
    const ring64 = this.ring64;
    if (ring64 === null) {
      this.writeSegment(this.ring, d, next, i);
      return;
    }
    const addr = this.chainAddr[i]!;
    const len = this.chainLen[i]!;
    const last = i === this.chainSegments - 1;
    // struct virtq_desc as words: addr = 64-bit word 2d, len = 32-bit word 4d+2, flags and next
    // = 16-bit words 8d+6 and 8d+7 (SplitDesc offsets 0, 8, 12, 14).
    ring64[2 * d] = addr;
    this.ring32![4 * d + 2] = len;
    this.ring16[8 * d + 6] = (i < this.chainReadable ? 0 : DescFlag.WRITE) | (last ? 0 : DescFlag.NEXT);
    this.ring16[8 * d + 7] = last ? 0 : next;
  }

  /** Puts a used chain's descriptors back on the free list, following the links it was built with. */
  private freeChain(head: number, descs: number): void {
    let last = head;
    for (let i = 1; i < descs; i++) last = this.nextFree[last]!;
    this.nextFree[last] = this.freeHead;
    this.freeHead = head;
  }
}

/** struct virtq_desc (virtio 1.2 §2.7.5), entry `d` of a table. */
function writeDesc(table: DataView, d: number, addr: bigint, len: number, flags: number, next: number): void {
  const at = d * SplitDesc.SIZE;
  table.setBigUint64(at + SplitDesc.ADDR, addr, true);
  table.setUint32(at + SplitDesc.LEN, len, true);
  table.setUint16(at + SplitDesc.FLAGS, flags, true);
  table.setUint16(at + SplitDesc.NEXT, next, true);
}

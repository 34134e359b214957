// The device side of a split virtqueue (virtio 1.2 §2.7): read the available ring, walk descriptor
// chains (direct and indirect), write used elements, and apply both notification-suppression
// schemes. Progress lives in the queue's QueueDeviceState, not here.

import type { GuestMemory } from '../../../mem/dma.js';
import { AvailFlag, DescFlag, SplitAlign, SplitAvail, SplitDesc, SplitUsed, UsedFlag } from '../../../spec/index.js';
import type { SimQueue } from '../queue.js';
import {
  addSegment, badChain, dataView, emptyChain, guestBytes, numericAddressOf, regionByNumber,
  type Chain, type DeviceRing, type RingContext, type UsedFault,
} from './chain.js';

const U16 = 0xffff;

// struct virtq_avail / virtq_used (virtio 1.2 §2.7.6, §2.7.8).
const { FLAGS: AVAIL_FLAGS, IDX: AVAIL_IDX, RING: AVAIL_RING } = SplitAvail;
const { FLAGS: USED_FLAGS, IDX: USED_IDX, RING: USED_RING, ELEM_SIZE: USED_ELEM_SIZE } = SplitUsed;

/** vring_need_event (virtio 1.2 §2.7.7.2): has `idx` moved past `event` since `old`? */
function needEvent(event: number, idx: number, old: number): boolean {
  return ((idx - event - 1) & U16) < ((idx - old) & U16);
}

export class SplitDeviceRing implements DeviceRing {
  private readonly desc: DataView;
  private readonly avail: DataView;
  private readonly used: DataView;
  /** avail->idx as last read: it may only move forward (§2.7.6.1). */
  private lastSeenAvail: number;

  constructor(
    private readonly queue: SimQueue,
    private readonly mem: GuestMemory,
    private readonly ctx: RingContext,
  ) {
    const n = queue.size;
    checkAlign(queue, queue.desc, SplitAlign.DESC, 'descriptor table');
    checkAlign(queue, queue.driver, SplitAlign.AVAIL, 'available ring');
    checkAlign(queue, queue.device, SplitAlign.USED, 'used ring');
    this.desc = dataView(guestBytes(mem, queue.index, queue.desc, SplitDesc.SIZE * n, 'descriptor table', 'ring-address-invalid'));
    this.avail = dataView(guestBytes(mem, queue.index, queue.driver, AVAIL_RING + 2 * n + 2, 'available ring', 'ring-address-invalid'));
    this.used = dataView(guestBytes(mem, queue.index, queue.device, USED_RING + USED_ELEM_SIZE * n + 2, 'used ring', 'ring-address-invalid'));
    this.lastSeenAvail = queue.state.availIdx;
  }

  fetch(): Chain | undefined {
    const { state, size, index } = this.queue;
    const availIdx = this.avail.getUint16(AVAIL_IDX, true);
    if (availIdx !== this.lastSeenAvail) {
      // §2.7.6.1: the driver never decrements idx — a move of more than half the index space is one.
      if (((availIdx - this.lastSeenAvail) & U16) > 0x8000) {
        throw badChain(index, 'avail-idx-decreased', `available index went back from ${this.lastSeenAvail} to ${availIdx}`);
      }
      this.lastSeenAvail = availIdx;
    }
    const pending = (availIdx - state.availIdx) & U16;
    if (pending === 0) return undefined;
    if (pending > size) {
      throw badChain(index, 'avail-idx-too-far', `available index moved from ${state.availIdx} to ${availIdx}, more than the ${size} entries of the ring`);
    }
    const head = this.avail.getUint16(AVAIL_RING + 2 * (state.availIdx % size), true);
    if (head >= size) throw badChain(index, 'avail-head-out-of-range', `available ring names head ${head}, beyond the ${size} descriptors`);
    const chain = this.walk(head);
    state.availIdx = (state.availIdx + 1) & U16;
    return chain;
  }

  /** Follows NEXT from `head`; a final INDIRECT descriptor switches to its table (§2.7.5.3). */
  private walk(head: number): Chain {
    const { size, index } = this.queue;
    const chain = emptyChain(head);
    let table = this.desc;
    /** Where `table` starts in its DataView (an indirect table is read in place in its region). */
    let base = 0;
    let tableLen = size;
    let inIndirect = false;
    let direct = 0;
    let i = head;
    for (let seen = 1; ; seen++) {
      // §2.7.5.2: no loops; a direct chain longer than the table must revisit a descriptor.
      if (seen > tableLen) throw badChain(index, 'chain-loop', `chain ${head} is longer than its table of ${tableLen} descriptors (a loop?)`);
      const at = base + i * SplitDesc.SIZE;
      const addr = table.getBigUint64(at + SplitDesc.ADDR, true);
      const addrAt = numericAddressOf(table.getUint32(at + SplitDesc.ADDR, true), table.getUint32(at + SplitDesc.ADDR + 4, true));
      const len = table.getUint32(at + SplitDesc.LEN, true);
      const flags = table.getUint16(at + SplitDesc.FLAGS, true);
      const next = table.getUint16(at + SplitDesc.NEXT, true);
      if (!inIndirect) chain.ringDescs++;
      if (flags & DescFlag.INDIRECT) {
        // §2.7.5.3.1: only with the feature, never nested, never with NEXT.
        if (!this.ctx.indirect) throw badChain(index, 'indirect-not-negotiated', `chain ${head} uses INDIRECT, which was not negotiated`);
        if (inIndirect) throw badChain(index, 'indirect-nested', `chain ${head} nests an indirect table inside an indirect table`);
        if (flags & DescFlag.NEXT) throw badChain(index, 'indirect-with-next', `chain ${head} sets INDIRECT together with NEXT`);
        if (len === 0 || len % SplitDesc.SIZE !== 0) {
          throw badChain(index, 'indirect-table-invalid', `chain ${head}: indirect table length ${len} is not a non-zero multiple of ${SplitDesc.SIZE}`);
        }
        const r = regionByNumber(this.mem, addrAt, len);
        if (r) {
          table = r.data;
          base = addrAt - r.start;
        } else {
          table = dataView(guestBytes(this.mem, index, addr, len, 'indirect table'));
          base = 0;
        }
        tableLen = len / SplitDesc.SIZE;
        direct = seen - 1;
        inIndirect = true;
        i = 0;
        seen = 0;
        continue;
      }
      addSegment(chain, index, this.mem, addr, addrAt, len, (flags & DescFlag.WRITE) !== 0);
      if (!(flags & DescFlag.NEXT)) {
        // §2.7.5.3.1: no chain longer than the queue size — an indirect table is no way around it.
        if (inIndirect && direct + seen > size) {
          this.ctx.report('chain-longer-than-queue', `chain ${head} has ${direct + seen} descriptors, more than the queue size ${size}`);
        }
        return chain;
      }
      if (next >= tableLen) throw badChain(index, 'desc-next-out-of-range', `chain ${head} links to descriptor ${next}, beyond its table of ${tableLen}`);
      i = next;
    }
  }

  supports(fault: UsedFault): boolean {
    return fault !== 'bad-packed-flags';
  }

  /** §2.7.8 device requirements: len is set before used->idx moves. */
  markUsed(chain: Chain, written: number, fault?: UsedFault): void {
    const { state, size } = this.queue;
    const at = USED_RING + USED_ELEM_SIZE * (state.usedIdx % size);
    this.used.setUint32(at, fault === 'bad-used-id' ? size : chain.id, true);
    this.used.setUint32(at + 4, fault === 'used-len-overflow' ? chain.writableLen + 1 : written, true);
    state.usedIdx = (state.usedIdx + (fault === 'used-index-jump' ? 2 : 1)) & U16;
    this.used.setUint16(USED_IDX, state.usedIdx, true);
  }

  /** §2.7.7.2: used_event with EVENT_IDX, else the NO_INTERRUPT flag (§2.7.7.1: flags 0 or 1, 0 with EVENT_IDX). */
  needsInterrupt(): boolean {
    const { state, size } = this.queue;
    const previous = state.signalled;
    state.signalled = { idx: state.usedIdx, wrap: true };
    const flags = this.avail.getUint16(AVAIL_FLAGS, true);
    if (flags > (this.ctx.eventIdx ? 0 : AvailFlag.NO_INTERRUPT)) {
      this.ctx.report('avail-flags-invalid', `avail->flags is ${flags}${this.ctx.eventIdx ? ' with EVENT_IDX negotiated' : ''}`);
    }
    if (!this.ctx.eventIdx) return (flags & AvailFlag.NO_INTERRUPT) === 0;
    if (previous === undefined) return true;
    const usedEvent = this.avail.getUint16(AVAIL_RING + 2 * size, true);
    return needEvent(usedEvent, state.usedIdx, previous.idx);
  }

  /** avail->idx: the device's fetching does not move it. */
  driverMark(): number {
    return this.avail.getUint16(AVAIL_IDX, true);
  }

  /** §2.7.10 device requirements: avail_event with EVENT_IDX (flags stay 0), else NO_NOTIFY. */
  publishNotifyWish(wanted: boolean, atDriverEnd = false): void {
    const { state, size } = this.queue;
    if (this.ctx.eventIdx) {
      // Not wanted: leave avail_event where it is, so the driver only notifies once it passes it.
      // At the device's position after buffers were left: an index the driver already passed,
      // which its next postings never cross (§2.7.10's vring_need_event): they would never notify.
      if (wanted) this.used.setUint16(USED_RING + USED_ELEM_SIZE * size, atDriverEnd ? this.driverMark() : state.availIdx, true);
    } else {
      this.used.setUint16(USED_FLAGS, wanted ? 0 : UsedFlag.NO_NOTIFY, true);
    }
  }
}

/** §2.7.1: each part of the ring at its alignment. */
function checkAlign(queue: SimQueue, addr: bigint, align: number, what: string): void {
  if (addr % BigInt(align) !== 0n) {
    throw badChain(queue.index, 'ring-misaligned', `${what} address 0x${addr.toString(16)} is not ${align}-byte aligned (virtio 1.2 §2.7)`);
  }
}

// The device side of a packed virtqueue (virtio 1.2 §2.8): poll the next descriptor for AVAIL/USED
// against the driver ring wrap counter, walk the list (or its indirect table), write one used
// descriptor per buffer carrying the buffer id — flags last — and apply the event-suppression
// structures. Progress lives in the queue's QueueDeviceState, not here.

import type { GuestMemory } from '../../../mem/dma.js';
import { PackedAlign, PackedDesc, PackedEventFlag, PackedFlag } from '../../../spec/index.js';
import type { SimQueue } from '../queue.js';
import {
  addSegment, badChain, dataView, emptyChain, guestBytes, numericAddressOf, regionByNumber,
  type Chain, type DeviceRing, type RingContext, type UsedFault,
} from './chain.js';

// struct pvirtq_event_suppress (virtio 1.2 §2.8.14).
const EVENT_OFF_WRAP = 0;
const EVENT_FLAGS = 2;
const EVENT_SIZE = 4;
const EVENT_WRAP = 0x8000;
const EVENT_OFF_MASK = 0x7fff;
/** desc_event_flags is 2 bits; the other 14 are reserved, set to 0 (§2.8.14). */
const EVENT_FLAGS_MASK = 3;

/** Is the descriptor with these flags available in the lap whose driver wrap counter is `wrap`? (§2.8.1) */
function isAvailable(flags: number, wrap: boolean): boolean {
  return ((flags & PackedFlag.AVAIL) !== 0) === wrap && ((flags & PackedFlag.USED) !== 0) !== wrap;
}

export class PackedDeviceRing implements DeviceRing {
  private readonly desc: DataView;
  private readonly driverEvent: DataView;
  private readonly deviceEvent: DataView;

  constructor(
    private readonly queue: SimQueue,
    private readonly mem: GuestMemory,
    private readonly ctx: RingContext,
  ) {
    for (const [addr, align, what] of [
      [queue.desc, PackedAlign.DESC, 'descriptor ring'],
      [queue.driver, PackedAlign.EVENT, 'driver event suppression'],
      [queue.device, PackedAlign.EVENT, 'device event suppression'],
    ] as const) {
      if (addr % BigInt(align) !== 0n) {
        throw badChain(queue.index, 'ring-misaligned', `${what} address 0x${addr.toString(16)} is not ${align}-byte aligned (virtio 1.2 §2.8.10.1)`);
      }
    }
    this.desc = dataView(guestBytes(mem, queue.index, queue.desc, PackedDesc.SIZE * queue.size, 'descriptor ring', 'ring-address-invalid'));
    this.driverEvent = dataView(guestBytes(mem, queue.index, queue.driver, EVENT_SIZE, 'driver event suppression', 'ring-address-invalid'));
    this.deviceEvent = dataView(guestBytes(mem, queue.index, queue.device, EVENT_SIZE, 'device event suppression', 'ring-address-invalid'));
  }

  /** §2.8.2 polling: the descriptor at the device's position, if the driver made it available. */
  fetch(): Chain | undefined {
    const { state, size, index } = this.queue;
    if (!isAvailable(this.flagsAt(state.availIdx), state.availWrap)) return undefined;
    const chain = emptyChain(0);
    let slot = state.availIdx;
    let wrap = state.availWrap;
    // Slots fetched and not yet used: the driver may only make a list available with room for all of it (§2.8.17).
    const owned = (state.availWrap === state.usedWrap ? 0 : size) + state.availIdx - state.usedIdx;
    for (;;) {
      if (chain.ringDescs === size) throw badChain(index, 'chain-loop', `list at slot ${state.availIdx} is longer than the ring of ${size}`);
      const at = slot * PackedDesc.SIZE;
      const addr = this.desc.getBigUint64(at + PackedDesc.ADDR, true);
      const addrAt = numericAddressOf(this.desc.getUint32(at + PackedDesc.ADDR, true), this.desc.getUint32(at + PackedDesc.ADDR + 4, true));
      const len = this.desc.getUint32(at + PackedDesc.LEN, true);
      const flags = this.desc.getUint16(at + PackedDesc.FLAGS, true);
      // §2.8.6: every descriptor of a list carries correct AVAIL/USED bits, not only the first.
      if (!isAvailable(flags, wrap)) throw badChain(index, 'list-partially-available', `descriptor at slot ${slot} of a list is not available`);
      if (owned + chain.ringDescs >= size) {
        throw badChain(index, 'ring-overrun', `slot ${slot} is made available while the device still holds it (${owned} slots in flight)`);
      }
      chain.ringDescs++;
      // §2.8.6: the buffer id is in the last descriptor of the list.
      chain.id = this.desc.getUint16(at + PackedDesc.ID, true);
      if (flags & PackedFlag.INDIRECT) {
        // §2.8.19: only with INDIRECT_DESC, and never in a list linked by NEXT.
        if (!this.ctx.indirect) throw badChain(index, 'indirect-not-negotiated', `slot ${slot} uses INDIRECT, which was not negotiated`);
        if ((flags & PackedFlag.NEXT) || chain.ringDescs > 1) throw badChain(index, 'indirect-with-next', `slot ${slot}: INDIRECT inside a list linked by NEXT`);
        this.readIndirect(chain, addr, addrAt, len);
      } else {
        addSegment(chain, index, this.mem, addr, addrAt, len, (flags & PackedFlag.WRITE) !== 0);
      }
      slot++;
      if (slot === size) {
        slot = 0;
        wrap = !wrap;
      }
      if (!(flags & PackedFlag.NEXT)) break;
    }
    state.availIdx = slot;
    state.availWrap = wrap;
    return chain;
  }

  /**
   * §2.8.7: descriptors one after another; WRITE is the only flag that counts, ids are ignored.
   * §2.8.19: the driver sets no other flag there (the device ignores them, recorded); §2.8.17: no
   * longer than the queue size.
   */
  private readIndirect(chain: Chain, addr: bigint, addrAt: number, len: number): void {
    const { index, size } = this.queue;
    if (len === 0 || len % PackedDesc.SIZE !== 0) {
      throw badChain(index, 'indirect-table-invalid', `indirect table length ${len} is not a non-zero multiple of ${PackedDesc.SIZE}`);
    }
    // Read in place in its region when the memory offers that, else through a view of the table.
    const r = regionByNumber(this.mem, addrAt, len);
    const table = r ? r.data : dataView(guestBytes(this.mem, index, addr, len, 'indirect table'));
    const base = r ? addrAt - r.start : 0;
    if (len / PackedDesc.SIZE > size) {
      this.ctx.report('chain-longer-than-queue', `an indirect table of ${len / PackedDesc.SIZE} descriptors, more than the queue size ${size}`);
    }
    for (let at = 0; at < len; at += PackedDesc.SIZE) {
      const flags = table.getUint16(base + at + PackedDesc.FLAGS, true);
      if (flags & ~PackedFlag.WRITE) {
        this.ctx.report('indirect-entry-flags', `indirect table entry ${at / PackedDesc.SIZE} has flags 0x${flags.toString(16)}`);
      }
      const entry = base + at + PackedDesc.ADDR;
      addSegment(chain, index, this.mem, table.getBigUint64(entry, true), numericAddressOf(table.getUint32(entry, true), table.getUint32(entry + 4, true)),
        table.getUint32(base + at + PackedDesc.LEN, true), (flags & PackedFlag.WRITE) !== 0);
    }
  }

  supports(fault: UsedFault): boolean {
    return fault !== 'used-index-jump';
  }

  /**
   * §2.8.6 / §2.8.15: one used descriptor per buffer at the device's position, id and len first,
   * flags (AVAIL = USED = the device wrap counter; WRITE when data was written) last; then skip
   * the slots the list occupied.
   */
  markUsed(chain: Chain, written: number, fault?: UsedFault): void {
    const { state, size } = this.queue;
    const at = state.usedIdx * PackedDesc.SIZE;
    const len = fault === 'used-len-overflow' ? chain.writableLen + 1 : written;
    this.desc.setUint16(at + PackedDesc.ID, fault === 'bad-used-id' ? size : chain.id, true);
    this.desc.setUint32(at + PackedDesc.LEN, len, true);
    // bad-packed-flags: USED marks the descriptor used (so the driver looks at it) but AVAIL differs.
    const avail = (fault === 'bad-packed-flags' ? !state.usedWrap : state.usedWrap) ? PackedFlag.AVAIL : 0;
    const used = state.usedWrap ? PackedFlag.USED : 0;
    this.desc.setUint16(at + PackedDesc.FLAGS, avail | used | (len > 0 ? PackedFlag.WRITE : 0), true);
    state.usedIdx += chain.ringDescs;
    if (state.usedIdx >= size) {
      state.usedIdx -= size;
      state.usedWrap = !state.usedWrap;
    }
  }

  /**
   * §2.8.10: the driver event suppression structure. DESC (only meaningful with EVENT_IDX) asks
   * for a notification once the descriptor at off/wrap has been used since the last decision.
   */
  needsInterrupt(): boolean {
    const { state, size } = this.queue;
    const previous = state.signalled;
    state.signalled = { idx: state.usedIdx, wrap: state.usedWrap };
    const raw = this.driverEvent.getUint16(EVENT_FLAGS, true);
    const flags = raw & EVENT_FLAGS_MASK;
    const offWrap = this.driverEvent.getUint16(EVENT_OFF_WRAP, true);
    // §2.8.10 / §2.8.14: 0x3 is reserved, the upper bits too; DESC needs EVENT_IDX and an offset in the ring.
    if (raw > PackedEventFlag.DESC || (flags === PackedEventFlag.DESC && (!this.ctx.eventIdx || (offWrap & EVENT_OFF_MASK) >= size))) {
      this.ctx.report('driver-event-invalid', `driver event suppression flags 0x${raw.toString(16)}, off/wrap 0x${offWrap.toString(16)}${this.ctx.eventIdx ? '' : ' without EVENT_IDX'}`);
    }
    if (flags === PackedEventFlag.DISABLE) return false;
    if (flags !== PackedEventFlag.DESC || !this.ctx.eventIdx || previous === undefined) return true;
    // Positions on one line: the current lap counts from 0, the previous one from -size.
    const linear = (idx: number, wrap: boolean): number => (wrap === state.usedWrap ? idx : idx - size);
    const event = linear(offWrap & EVENT_OFF_MASK, (offWrap & EVENT_WRAP) !== 0);
    return linear(previous.idx, previous.wrap) <= event && event < state.usedIdx;
  }

  /**
   * §2.8.10 / §2.8.14: the device event suppression structure — DISABLE, or under EVENT_IDX DESC
   * with off_wrap naming one descriptor, else ENABLE. A driver sends a notification for DESC only
   * when it makes that very descriptor available, so it must be one the driver will make available
   * next. After fetching everything that is the device's position. After the device left buffers
   * (`atDriverEnd`) its position is the first of them, a descriptor the driver made available
   * already and cannot make available again before the device uses it: the driver would never
   * notify. Name the end of what it made available then, with the Driver Ring Wrap Counter there.
   */
  publishNotifyWish(wanted: boolean, atDriverEnd = false): void {
    const { state } = this.queue;
    if (!wanted) {
      this.deviceEvent.setUint16(EVENT_FLAGS, PackedEventFlag.DISABLE, true);
    } else if (this.ctx.eventIdx) {
      const { slot, wrap } = atDriverEnd ? this.driverEnd() : { slot: state.availIdx, wrap: state.availWrap };
      this.deviceEvent.setUint16(EVENT_OFF_WRAP, slot | (wrap ? EVENT_WRAP : 0), true);
      this.deviceEvent.setUint16(EVENT_FLAGS, PackedEventFlag.DESC, true);
    } else {
      this.deviceEvent.setUint16(EVENT_FLAGS, PackedEventFlag.ENABLE, true);
    }
  }

  /** driverEnd() counted over two laps: the lap with wrap counter 1 from 0, the other from size. */
  driverMark(): number {
    const { slot, wrap } = this.driverEnd();
    return (wrap ? 0 : this.queue.size) + slot;
  }

  /**
   * The descriptor the driver makes available next: the slot after the available ones that follow
   * the device's position (at most a ring's worth), and the Driver Ring Wrap Counter there (§2.8.1).
   */
  private driverEnd(): { slot: number; wrap: boolean } {
    const { state, size } = this.queue;
    let slot = state.availIdx;
    let wrap = state.availWrap;
    for (let n = 0; n < size && isAvailable(this.flagsAt(slot), wrap); n++) {
      if (++slot === size) {
        slot = 0;
        wrap = !wrap;
      }
    }
    return { slot, wrap };
  }

  private flagsAt(slot: number): number {
    return this.desc.getUint16(slot * PackedDesc.SIZE + PackedDesc.FLAGS, true);
  }
}

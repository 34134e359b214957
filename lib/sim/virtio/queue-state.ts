// The proposal's virtqueue state registers as the device implements them ("[PATCH V2 0/2]
// Virtqueue State Synchronization", virtio-dev July 2021; offsets and encodings PROVISIONAL,
// docs/provisional-registers.md): queue_avail_state / queue_used_state, per queue_select.
//
// Split ring (virtio 1.2 §2.7): avail_state = last_avail_idx, the next available-ring index the
// device will fetch; used_state = used_idx, the next used index it will publish. Both 16-bit
// free-running.
// Packed ring (virtio 1.2 §2.8): bits 0–14 the slot, bit 15 the wrap counter — of the next
// descriptor the device will fetch (avail) and of the next slot it will write a used descriptor
// into (used).
//
// A read returns the queue's values at that instant. Only while STOP shows do they describe a
// consistent point (nothing moves any more); before that they are live and may be stale the moment
// they are read — the proposal lets the driver read them only while STOP is set, and the SDK does.

import { PACKED_STATE_INDEX_MASK, PACKED_STATE_WRAP, packPackedState, unpackPackedState } from '../../spec/index.js';
import type { SimQueue } from './queue.js';

const U16 = 0xffff;

export interface StateRegisters {
  avail: number;
  used: number;
}

export function readStateRegisters(queue: SimQueue, packed: boolean): StateRegisters {
  const s = queue.state;
  if (packed) return { avail: packPackedState(s.availIdx, s.availWrap), used: packPackedState(s.usedIdx, s.usedWrap) };
  return { avail: s.availIdx, used: s.usedIdx };
}

/**
 * Fault state-lie (faults.ts): avail `offset` ahead of the truth, used `offset` behind it. Split:
 * mod 2^16. Packed: the 15-bit index shifted, the wrap counter untouched — an index at or beyond
 * the queue size can come out, a state no packed ring can be in.
 */
export function lieAbout(regs: StateRegisters, packed: boolean, offset: number): StateRegisters {
  if (!packed) return { avail: (regs.avail + offset) & U16, used: (regs.used - offset) & U16 };
  const shift = (v: number, by: number): number => (v & PACKED_STATE_WRAP) | ((v + by) & PACKED_STATE_INDEX_MASK);
  return { avail: shift(regs.avail, offset), used: shift(regs.used, -offset) };
}

/** The driver writes the available state during initialisation (checked at DRIVER_OK, see stateProblem). */
export function writeAvailState(queue: SimQueue, packed: boolean, value: number): void {
  const s = queue.state;
  if (packed) {
    const { index, wrap } = unpackPackedState(value);
    s.availIdx = index;
    s.availWrap = wrap;
  } else {
    s.availIdx = value & U16;
  }
}

export function writeUsedState(queue: SimQueue, packed: boolean, value: number): void {
  const s = queue.state;
  if (packed) {
    const { index, wrap } = unpackPackedState(value);
    s.usedIdx = index;
    s.usedWrap = wrap;
  } else {
    s.usedIdx = value & U16;
  }
  // A restored used position is where the next notification decision starts (EVENT_IDX).
  s.signalled = undefined;
}

/**
 * How far the available position is ahead of the used one: split, in available-ring entries
 * (one per request); packed, in descriptor slots (a request's used descriptor advances the used
 * position by the slots its list occupied, virtio 1.2 §2.8.6). These are the requests the device
 * fetched and has not used. Undefined when no ring could be in this state.
 */
export function outstanding(queue: SimQueue, packed: boolean): number | undefined {
  const { availIdx, availWrap, usedIdx, usedWrap } = queue.state;
  const size = queue.size;
  if (!packed) {
    const d = (availIdx - usedIdx) & U16;
    return d <= size ? d : undefined;
  }
  if (availIdx >= size || usedIdx >= size) return undefined;
  // Same lap: avail is at or after used. Different laps: avail has wrapped once more than used.
  const d = availWrap === usedWrap ? availIdx - usedIdx : availIdx + size - usedIdx;
  return d >= 0 && d <= size ? d : undefined;
}

/** Why the queue's written state is impossible for its layout, or undefined when it is fine. */
export function stateProblem(queue: SimQueue, packed: boolean): string | undefined {
  if (outstanding(queue, packed) !== undefined) return undefined;
  const r = readStateRegisters(queue, packed);
  const hex = (v: number): string => `0x${v.toString(16)}`;
  return packed
    ? `state avail ${hex(r.avail)} / used ${hex(r.used)} is impossible for a packed ring of ${queue.size} (index ≥ size, or used ahead of available)`
    : `state avail ${r.avail} / used ${r.used} is impossible for a split ring of ${queue.size} (used ahead of available, or more than the ring behind)`;
}

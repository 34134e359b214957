// What the device side of a virtqueue looks like, split and packed alike: chains fetched from the
// driver's available buffers, used elements written back, and the two event-suppression decisions
// (virtio 1.2 §2.6–§2.8). The two layouts live in split-ring.ts and packed-ring.ts.

import type { GuestMemory } from '../mem/dma.js';
import { VirtqueueError } from '../virtio/errors.js';

/** A piece of driver memory named by a descriptor: device address and length in bytes. */
export interface Segment {
  addr: bigint;
  len: number;
}

/** One available buffer as the device fetched it (virtio 1.2 §2.7.5, §2.8.5). */
export interface Chain {
  /** Split: the head descriptor index. Packed: the buffer id of the last descriptor. */
  id: number;
  /** Ring slots the chain occupies (an indirect table counts as one); packed uses it to skip. */
  ringDescs: number;
  /** Device-readable segments, in order; they all come before the writable ones. */
  readable: Segment[];
  /** Device-writable segments, in order. */
  writable: Segment[];
  readableLen: number;
  writableLen: number;
}

/**
 * Misbehaviours a test can ask the device for on its next used element; each is a rule of
 * virtio 1.2 §2.7.8 (used ring) / §2.8.22 (receiving used buffers) that a driver must check
 * rather than trust.
 * - bad-used-id: the used element names id = queue size (never a valid head or buffer id).
 * - used-len-overflow: len = the chain's writable bytes + 1.
 * - used-index-jump (split): used->idx advances by 2 for one element.
 * - bad-packed-flags (packed): the used descriptor has USED = the device wrap counter (it looks used)
 *   but AVAIL != USED.
 */
export type UsedFault = 'bad-used-id' | 'used-len-overflow' | 'used-index-jump' | 'bad-packed-flags';

/** The device side of one ring. Every method may throw VirtqueueError when the driver broke the rules. */
export interface DeviceRing {
  /** The next available chain, or undefined when the driver has made none available. */
  fetch(): Chain | undefined;
  /** Returns `chain` to the driver with `written` bytes written, optionally misbehaving. */
  markUsed(chain: Chain, written: number, fault?: UsedFault): void;
  /** Whether this ring can apply `fault` (split or packed only faults). */
  supports(fault: UsedFault): boolean;
  /** After used elements were written: does the driver want a used-buffer notification? */
  needsInterrupt(): boolean;
  /** Tells the driver whether it needs to notify (avail_event, NO_NOTIFY, device event struct). */
  publishNotifyWish(wanted: boolean): void;
}

/** Negotiated transport features a ring honours. */
export interface RingFeatures {
  indirect: boolean;
  eventIdx: boolean;
}

/**
 * A view of driver memory, or VirtqueueError E_BAD_ADDRESS when the driver does not own it
 * (the device model of an IOMMU fault).
 */
export function guestBytes(mem: GuestMemory, queue: number, addr: bigint, len: number, what: string): Uint8Array {
  try {
    return mem.view(addr, len);
  } catch {
    throw new VirtqueueError('E_BAD_ADDRESS', queue,
      `${what} at 0x${addr.toString(16)}+${len} is outside the driver's memory`, undefined, false);
  }
}

export function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A driver error the device found in ring memory (the chain is not used; the device needs reset). */
export function badChain(queue: number, message: string): VirtqueueError {
  return new VirtqueueError('E_BAD_CHAIN', queue, message, 'the driver broke the ring protocol; reset the device');
}

/** Adds a segment to a chain under construction, enforcing readable-before-writable
 * (virtio 1.2 §2.7.5.2 / §2.8.17, scatter-gather driver requirements); zero-length buffers are refused. */
export function addSegment(chain: Chain, queue: number, mem: GuestMemory, addr: bigint, len: number, writable: boolean): void {
  if (len === 0) throw badChain(queue, `descriptor of chain ${chain.id} has length 0`);
  guestBytes(mem, queue, addr, len, 'buffer');
  if (writable) {
    chain.writable.push({ addr, len });
    chain.writableLen += len;
  } else {
    if (chain.writable.length > 0) {
      throw badChain(queue, `chain ${chain.id} has a device-readable descriptor after a device-writable one`);
    }
    chain.readable.push({ addr, len });
    chain.readableLen += len;
  }
}

export function emptyChain(id: number): Chain {
  return { id, ringDescs: 0, readable: [], writable: [], readableLen: 0, writableLen: 0 };
}

// What the device side of a virtqueue looks like, split and packed alike: chains fetched from the
// driver's available buffers, used elements written back, and the two event-suppression decisions
// (virtio 1.2 §2.6–§2.8). The two layouts live in split.ts and packed.ts.

import { NUMERIC_BOUND, type GuestMemory, type GuestRegion } from '../../../mem/dma.js';
import { RuleViolation, type RuleId } from '../rules.js';

/** A piece of driver memory named by a descriptor: device address and length in bytes. */
/** One buffer of a chain: where it is in driver memory and how long. */
export interface Segment {
  /** Driver address (an IOVA with VIRTIO_F_ACCESS_PLATFORM, virtio 1.2 §6.1). */
  addr: bigint;
  /** Length in bytes. */
  len: number;
}

/**
 * A segment of a fetched chain: a {@link Segment} with its address also as a number, so the
 * device's every access to it (GuestMemory.regionAt) converts no bigint.
 */
export interface ChainSegment extends Segment {
  /** `addr` as a number when it is below 2^52 (exact), else -1 (accesses then go by `addr`). */
  at: number;
}

/** A descriptor address read as two little-endian 32-bit halves, as ChainSegment.at has it. */
export function numericAddressOf(lo: number, hi: number): number {
  const a = hi * 0x1_0000_0000 + lo;
  return a < NUMERIC_BOUND ? a : -1;
}

/** The region holding [at, at+len) by numeric address (ChainSegment.at), or undefined: -1, no fast path, or not owned (callers then go by the bigint). */
export function regionByNumber(mem: GuestMemory, at: number, len: number): GuestRegion | undefined {
  return at < 0 ? undefined : mem.regionAt?.(at, len);
}

/** A bigint address as ChainSegment.at has it. */
export function numericAddress(addr: bigint): number {
  return addr >= 0n && addr < BigInt(NUMERIC_BOUND) ? Number(addr) : -1;
}

/** One available buffer as the device fetched it (virtio 1.2 §2.7.5, §2.8.5). */
export interface Chain {
  /** Split: the head descriptor index. Packed: the buffer id of the last descriptor. */
  id: number;
  /** Ring slots the chain occupies (an indirect table counts as one); packed uses it to skip. */
  ringDescs: number;
  /** Device-readable segments, in order; they all come before the writable ones. */
  readable: ChainSegment[];
  /** Device-writable segments, in order. */
  writable: ChainSegment[];
  readableLen: number;
  writableLen: number;
}

/** The faults a ring applies to a used element it writes (../faults.ts describes each). */
export type UsedFault = 'bad-used-id' | 'used-len-overflow' | 'used-index-jump' | 'bad-packed-flags';

/** The device side of one ring. Every method may throw RuleViolation when the driver broke a rule (../rules.ts). */
export interface DeviceRing {
  /** The next available chain, or undefined when the driver has made none available. */
  fetch(): Chain | undefined;
  /** Returns `chain` to the driver with `written` bytes written, optionally misbehaving. */
  markUsed(chain: Chain, written: number, fault?: UsedFault): void;
  /** Whether this ring can apply `fault` (split or packed only faults). */
  supports(fault: UsedFault): boolean;
  /** After used elements were written: does the driver want a used-buffer notification? */
  needsInterrupt(): boolean;
  /**
   * Tells the driver whether it needs to notify (avail_event, NO_NOTIFY, device event struct).
   * `atDriverEnd`: the device left buffers the driver made available (too few for what waits), so
   * it wants to hear of the driver's next posting, not of the first buffer it left.
   */
  publishNotifyWish(wanted: boolean, atDriverEnd?: boolean): void;
  /**
   * Where the driver's available buffers end, as a number that moves only when the driver makes
   * more available (not when the device fetches): 1.4 §3.4.1 forbids it while suspended.
   */
  driverMark(): number;
}

/** Negotiated transport features a ring honours. */
export interface RingFeatures {
  indirect: boolean;
  eventIdx: boolean;
}

/** What a ring is given besides its queue and memory: the features, and where to report a rule the device ignores. */
export interface RingContext extends RingFeatures {
  /** A driver broke an 'ignore' rule (../rules.ts): recorded, and the ring carries on. */
  report(rule: RuleId, message: string): void;
}

/**
 * A view of driver memory, or RuleViolation (E_BAD_ADDRESS) when the driver does not own it (the
 * device model of an IOMMU fault): `rule` says whether it was ring or buffer memory.
 */
export function guestBytes(mem: GuestMemory, queue: number, addr: bigint, len: number, what: string,
  rule: 'ring-address-invalid' | 'buffer-address-invalid' = 'buffer-address-invalid'): Uint8Array {
  try {
    return mem.view(addr, len);
  } catch {
    throw new RuleViolation(rule, queue, `${what} at 0x${addr.toString(16)}+${len} is outside the driver's memory`);
  }
}

/**
 * Like {@link guestBytes} but only checks that the driver owns the range (no view is made when the
 * memory can say so directly): a descriptor's buffer, checked when its chain is fetched.
 */
export function checkGuest(mem: GuestMemory, queue: number, addr: bigint, len: number, what: string,
  rule: 'ring-address-invalid' | 'buffer-address-invalid' = 'buffer-address-invalid'): void {
  if (mem.contains === undefined) {
    guestBytes(mem, queue, addr, len, what, rule);
  } else if (!mem.contains(addr, len)) {
    throw new RuleViolation(rule, queue, `${what} at 0x${addr.toString(16)}+${len} is outside the driver's memory`);
  }
}

export function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A driver error the device found in ring memory (the chain is not used; the device needs reset). */
export function badChain(queue: number, rule: RuleId, message: string): RuleViolation {
  return new RuleViolation(rule, queue, message);
}

/** virtio 1.2 §2.7.5.2: a chain carries at most 2^32 bytes in total. */
const MAX_CHAIN_BYTES = 2 ** 32;

/**
 * Adds a segment to a chain under construction, enforcing readable-before-writable (virtio 1.2
 * §2.7.4.2 / §2.8.17) and the 2^32-byte total (§2.7.5.2); zero-length buffers are refused, as
 * QEMU's virtqueue_map_desc refuses them. `at` is `addr` as numericAddress() gives it.
 */
export function addSegment(chain: Chain, queue: number, mem: GuestMemory, addr: bigint, at: number, len: number, writable: boolean): void {
  if (len === 0) throw badChain(queue, 'zero-length-descriptor', `descriptor of chain ${chain.id} has length 0`);
  // The numeric fast path when the memory has one; anything it does not answer goes by the bigint.
  if (regionByNumber(mem, at, len) === undefined) checkGuest(mem, queue, addr, len, 'buffer');
  if (writable) {
    chain.writable.push({ addr, len, at });
    chain.writableLen += len;
  } else {
    if (chain.writable.length > 0) {
      throw badChain(queue, 'readable-after-writable', `chain ${chain.id} has a device-readable descriptor after a device-writable one`);
    }
    chain.readable.push({ addr, len, at });
    chain.readableLen += len;
  }
  if (chain.readableLen + chain.writableLen > MAX_CHAIN_BYTES) {
    throw badChain(queue, 'chain-too-large', `chain ${chain.id} carries more than 2^32 bytes`);
  }
}

export function emptyChain(id: number): Chain {
  return { id, ringDescs: 0, readable: [], writable: [], readableLen: 0, writableLen: 0 };
}

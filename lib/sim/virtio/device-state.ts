// The reference device's extra state for the DEVICE_STATE mailbox (PROVISIONAL, a uvirtio
// extension on top of the proposal's "device-specific state"; lib/spec DeviceStateCmd): the
// requests it fetched and holds without having used them (hold mode, docs/provisional-registers.md).
//
// Layout, little-endian throughout:
//
//   offset  size  field
//   0       4     magic "UVDS"
//   4       2     version (1)
//   6       2     count: held requests that follow
//   then, per held request:
//   +0      2     queue
//   +2      2     id — split: the head descriptor index; packed: the buffer id (virtio 1.2 §2.8.6)
//   +4      2     ringDescs — descriptor slots the request occupies in the ring (an indirect table
//                 counts as one); a packed ring's used position advances by it (§2.8.6)
//   +6      2     segment count (≥ 1)
//   +8      16×n  segments: le64 addr, le32 len (> 0), u8 writable (0 or 1), u8[3] zero;
//                 device-readable ones first (§2.7.5.2 / §2.8.17)
//
// The segments travel with the id because the destination cannot always re-read them: in a packed
// ring the held request's descriptor slots may already have been overwritten by used descriptors
// written for other requests (§2.8.6, used descriptors go wherever the device is writing).
// The bytes are untrusted input: decode() checks every field and the exact length.

import { checkValue, int, optionsObject } from '../../util/options.js';
import type { Chain, Segment } from './ring/chain.js';

/** The 4 ASCII bytes that open the reference device's state bytes (docs/provisional-registers.md#the-reference-devices-state-bytes). */
export const DEVICE_STATE_MAGIC = 'UVDS';
/** The format version at offset 4 (le16); decodeDeviceState refuses any other. */
export const DEVICE_STATE_VERSION = 1;
const HEADER_LEN = 8;
const REQUEST_HEADER_LEN = 8;
const SEGMENT_LEN = 16;

/** A request the device fetched from `queue` and has not used. */
export interface HeldRequest {
  /** The queue index it was fetched from. */
  queue: number;
  /** Split: the head descriptor's index; packed: the buffer id (virtio 1.2 §2.8.6). Below the queue size. */
  id: number;
  /**
   * Descriptor slots it occupies in the ring (an indirect table counts as one); a packed ring's
   * used position advances by this many when it is used (virtio 1.2 §2.8.6).
   */
  ringDescs: number;
  /** Its buffers in chain order, device-readable ones first (virtio 1.2 §2.7.5.2, §2.8.17); at least one. */
  segments: HeldSegment[];
}

/** One buffer of a held request: driver address, length in bytes (> 0), and its direction. */
export interface HeldSegment extends Segment {
  /** Device-writable (the device fills it) rather than device-readable. */
  writable: boolean;
}

/** What decode() can also check the fields against (without it: the format only). */
export interface DeviceStateLimits {
  /** Queues the device has: every held request's queue is below it. */
  queueCount: number;
  /** Largest queue size: ids and ringDescs are below / at most it. */
  queueMaxSize: number;
}

/**
 * `given` read once into a copy (decode compares against it for every request: a getter could
 * answer differently each time). Throws E_INVALID_ARGUMENT (UsageError) for a key
 * DeviceStateLimits does not have, and for a limit that is missing or not an integer in range.
 */
function deviceStateLimits(given: DeviceStateLimits): DeviceStateLimits {
  const l = optionsObject(given, 'decodeDeviceState limits', { queueCount: true, queueMaxSize: true });
  return {
    queueCount: checkValue(int(0, 0x10000), l.queueCount, 'decodeDeviceState limits.queueCount'),
    queueMaxSize: checkValue(int(0, 0x8000), l.queueMaxSize, 'decodeDeviceState limits.queueMaxSize'),
  };
}

/** The blob is malformed (or, with limits, beyond them); the message names the field. */
export class DeviceStateFormatError extends Error {}

export function heldRequest(queue: number, chain: Chain): HeldRequest {
  return {
    queue,
    id: chain.id,
    ringDescs: chain.ringDescs,
    segments: [
      ...chain.readable.map((s) => ({ addr: s.addr, len: s.len, writable: false })),
      ...chain.writable.map((s) => ({ addr: s.addr, len: s.len, writable: true })),
    ],
  };
}

export function encodedLength(held: readonly HeldRequest[]): number {
  return held.reduce((n, r) => n + REQUEST_HEADER_LEN + SEGMENT_LEN * r.segments.length, HEADER_LEN);
}

/**
 * The state bytes for `held` (docs/provisional-registers.md#the-reference-devices-state-bytes):
 * an 8-byte header, then per request 8 bytes and 16 per segment, little-endian. The fields are
 * written as given, not checked: decodeDeviceState is what refuses a malformed blob.
 */
export function encodeDeviceState(held: readonly HeldRequest[]): Uint8Array {
  const out = new Uint8Array(encodedLength(held));
  const v = new DataView(out.buffer);
  out.set(new TextEncoder().encode(DEVICE_STATE_MAGIC), 0);
  v.setUint16(4, DEVICE_STATE_VERSION, true);
  v.setUint16(6, held.length, true);
  let at = HEADER_LEN;
  for (const r of held) {
    v.setUint16(at, r.queue, true);
    v.setUint16(at + 2, r.id, true);
    v.setUint16(at + 4, r.ringDescs, true);
    v.setUint16(at + 6, r.segments.length, true);
    at += REQUEST_HEADER_LEN;
    for (const s of r.segments) {
      v.setBigUint64(at, s.addr, true);
      v.setUint32(at + 8, s.len, true);
      v.setUint8(at + 12, s.writable ? 1 : 0);
      at += SEGMENT_LEN;
    }
  }
  return out;
}

/**
 * The held requests in state bytes made by encodeDeviceState (or a device's SAVE), treated as
 * untrusted: every field and the exact length are checked, and with `limits` queue indexes, ids
 * and ringDescs against the device's queues. Throws DeviceStateFormatError (a plain Error whose
 * message names the field) for a blob that does not fit.
 */
export function decodeDeviceState(bytes: Uint8Array, given?: DeviceStateLimits): HeldRequest[] {
  const limits = given === undefined ? undefined : deviceStateLimits(given);
  const fail = (why: string): never => {
    throw new DeviceStateFormatError(`device state: ${why}`);
  };
  if (bytes.length < HEADER_LEN) fail(`${bytes.length} bytes is shorter than the ${HEADER_LEN}-byte header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== DEVICE_STATE_MAGIC) fail(`magic is ${JSON.stringify(magic)}, not "${DEVICE_STATE_MAGIC}"`);
  const version = v.getUint16(4, true);
  if (version !== DEVICE_STATE_VERSION) fail(`version ${version} is not ${DEVICE_STATE_VERSION}`);
  const count = v.getUint16(6, true);
  const held: HeldRequest[] = [];
  const seen = new Set<string>();
  let at = HEADER_LEN;
  for (let i = 0; i < count; i++) {
    if (at + REQUEST_HEADER_LEN > bytes.length) fail(`request ${i} runs past the ${bytes.length} bytes`);
    const queue = v.getUint16(at, true);
    const id = v.getUint16(at + 2, true);
    const ringDescs = v.getUint16(at + 4, true);
    const segmentCount = v.getUint16(at + 6, true);
    at += REQUEST_HEADER_LEN;
    if (limits && queue >= limits.queueCount) fail(`request ${i} names queue ${queue}; the device has ${limits.queueCount}`);
    if (limits && id >= limits.queueMaxSize) fail(`request ${i} has id ${id}, beyond the largest queue size ${limits.queueMaxSize}`);
    if (ringDescs < 1 || (limits && ringDescs > limits.queueMaxSize)) fail(`request ${i} occupies ${ringDescs} ring descriptors`);
    if (segmentCount < 1) fail(`request ${i} has no segments`);
    const key = `${queue}:${id}`;
    if (seen.has(key)) fail(`queue ${queue} id ${id} is held twice`);
    seen.add(key);
    if (at + SEGMENT_LEN * segmentCount > bytes.length) fail(`request ${i}'s ${segmentCount} segments run past the ${bytes.length} bytes`);
    const segments: HeldSegment[] = [];
    for (let k = 0; k < segmentCount; k++, at += SEGMENT_LEN) {
      const len = v.getUint32(at + 8, true);
      const writable = v.getUint8(at + 12);
      if (len === 0) fail(`request ${i} segment ${k} has length 0`);
      if (writable > 1) fail(`request ${i} segment ${k} has writable = ${writable}`);
      if (v.getUint8(at + 13) !== 0 || v.getUint16(at + 14, true) !== 0) fail(`request ${i} segment ${k} has non-zero padding`);
      if (!writable && segments.some((s) => s.writable)) fail(`request ${i} has a device-readable segment after a device-writable one`);
      segments.push({ addr: v.getBigUint64(at, true), len, writable: writable === 1 });
    }
    held.push({ queue, id, ringDescs, segments });
  }
  if (at !== bytes.length) fail(`${bytes.length - at} bytes follow the last request`);
  return held;
}

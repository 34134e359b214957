// DeviceSnapshot: what `VirtioDevice.snapshot()` captures and `reinit()` consumes, as plain,
// versioned JSON. A snapshot file is untrusted input (like rust-vmm's QueueState): it is validated
// in full — first on its own, then against the target device — before any of it touches a device.
//
// Format (version 1; fields in this order when written):
//   format        "uvirtio-snapshot"
//   version       1
//   createdAt     ISO-8601 time
//   source        address of the device it was taken from ("sim:blk", "vfio:0000:00:03.0")
//   deviceType    virtio device id (1 net, 2 blk, …); deviceTypeName its name
//   mechanism     "ring-state" | "suspend" | "backend" | "quiesce" (how the state was obtained)
//   layout        "split" | "packed"
//   features      negotiated features, hex string "0x…"; featureNames the same for people
//   queues[]      { index, size, desc, driver, device (hex IOVAs), vector,
//                   availState, usedState (SPEC-NOTES §1 encoding: split 16-bit index;
//                   packed bits 0–14 index + bit 15 wrap counter), inFlight (chains outstanding) }
//   config        reserved: empty (""); a generic copy of the device configuration is not
//                 allowed (virtio 1.2 §4.1.3.1, §2.5.1) and reinit does not need it
//   deviceState   device-specific extra state (DEVICE_STATE mailbox, constants.ts) or null:
//                 { bytes: hex } — opaque to the SDK; the reference device's hold mode puts the
//                 requests it fetched and had not finished there (lib/sim documents the format)

import { renameSync, writeFileSync, readFileSync, openSync, fsyncSync, closeSync, unlinkSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { PACKED_MAX_SIZE, SPLIT_MAX_SIZE, deviceTypeName, featureNames, unpackPackedState } from './constants.js';
import { SnapshotError, type ErrorCode } from './errors.js';
import type { Layout } from './queue/types.js';

export const SNAPSHOT_FORMAT = 'uvirtio-snapshot';
export const SNAPSHOT_VERSION = 1;
export type Mechanism = 'ring-state' | 'suspend' | 'backend' | 'quiesce';
const MECHANISMS: readonly Mechanism[] = ['ring-state', 'suspend', 'backend', 'quiesce'];

export interface SnapshotQueue {
  index: number;
  size: number;
  desc: string;
  driver: string;
  device: string;
  vector: number;
  availState: number;
  usedState: number;
  inFlight: number;
}

/** The most extra device state a snapshot may carry (1 MiB). */
export const MAX_DEVICE_STATE_BYTES = 1 << 20;

export interface DeviceSnapshot {
  format: typeof SNAPSHOT_FORMAT;
  version: typeof SNAPSHOT_VERSION;
  createdAt: string;
  source: string;
  deviceType: number;
  deviceTypeName: string;
  mechanism: Mechanism;
  layout: Layout;
  features: string;
  featureNames: string;
  queues: SnapshotQueue[];
  config: string;
  deviceState: { bytes: string } | null;
}

function fault(code: ErrorCode, message: string, hint?: string): SnapshotError {
  return new SnapshotError(code, `snapshot: ${message}`, hint);
}

// ---- reading and writing files ----

/** Writes the snapshot atomically: a temp file beside the target, fsync, rename. */
export function writeSnapshotFile(path: string, snap: DeviceSnapshot): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, JSON.stringify(snap, null, 2) + '\n', { mode: 0o600 });
    const fd = openSync(tmp, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw fault('E_SNAPSHOT_IO', `cannot write ${path}: ${(e as Error).message}`, 'check the directory exists and is writable');
  }
}

export function readSnapshotFile(path: string): DeviceSnapshot {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fault('E_SNAPSHOT_IO', `cannot read ${path}: ${(e as Error).message}`);
  }
  return parseSnapshot(text, path);
}

/** Parses and validates a snapshot on its own (no device needed). */
export function parseSnapshot(text: string, where = 'input'): DeviceSnapshot {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    // Cut short: the parser ran out of text (V8 names the position, which is then the end).
    const at = /at position (\d+)/.exec(msg);
    const atEnd = at !== null && Number(at[1]) >= text.trimEnd().length;
    const truncated = text.trim() !== '' && /^\s*[{[]/.test(text) && (atEnd || /end of (JSON )?input|Unterminated/i.test(msg));
    if (truncated) throw fault('E_SNAPSHOT_TRUNCATED', `${where} ends early (${msg})`, 'the file was cut short; take the snapshot again');
    throw fault('E_SNAPSHOT_NOT_JSON', `${where} is not JSON (${msg})`, 'pass a file written by `uvirtio snapshot` or VirtioDevice.snapshot()');
  }
  return validateSnapshot(data);
}

// ---- validation on its own ----

type Obj = Record<string, unknown>;
function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function field<T>(o: Obj, key: string, check: (v: unknown) => v is T, what: string, at = ''): T {
  const v = o[key];
  if (!check(v)) throw fault('E_SNAPSHOT_SCHEMA', `${at}${key} must be ${what}, found ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}
const isU16 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const isHex = (v: unknown): v is string => typeof v === 'string' && /^0x[0-9a-f]{1,32}$/i.test(v);
const isHexBytes = (v: unknown): v is string => typeof v === 'string' && /^([0-9a-f]{2})*$/i.test(v);

/** Checks every field of an untrusted object and returns it typed. */
export function validateSnapshot(data: unknown): DeviceSnapshot {
  if (!isObj(data)) throw fault('E_SNAPSHOT_SCHEMA', 'the top level must be an object');
  if (data.format !== SNAPSHOT_FORMAT) {
    throw fault('E_SNAPSHOT_SCHEMA', `format must be "${SNAPSHOT_FORMAT}", found ${JSON.stringify(data.format)}`, 'this is not a uvirtio snapshot');
  }
  if (data.version !== SNAPSHOT_VERSION) {
    throw fault('E_SNAPSHOT_VERSION', `version ${JSON.stringify(data.version)} is not supported (this uvirtio reads version ${SNAPSHOT_VERSION})`,
      'take the snapshot again with this version of uvirtio');
  }
  const layout = field(data, 'layout', (v): v is Layout => v === 'split' || v === 'packed', '"split" or "packed"');
  const mechanism = field(data, 'mechanism', (v): v is Mechanism => MECHANISMS.includes(v as Mechanism), MECHANISMS.join(' | '));
  const deviceType = field(data, 'deviceType', (v): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) < 256, 'a virtio device id');
  const features = field(data, 'features', isHex, 'a hex string "0x…"');
  const rawQueues = field(data, 'queues', (v): v is unknown[] => Array.isArray(v) && v.length > 0 && v.length <= 65535, 'a non-empty array');
  const seen = new Set<number>();
  const queues = rawQueues.map((q, i) => {
    const at = `queues[${i}].`;
    if (!isObj(q)) throw fault('E_SNAPSHOT_SCHEMA', `queues[${i}] must be an object`);
    const sq: SnapshotQueue = {
      index: field(q, 'index', isU16, 'a queue index', at),
      size: field(q, 'size', isU16, 'a queue size', at),
      desc: field(q, 'desc', isHex, 'a hex address', at),
      driver: field(q, 'driver', isHex, 'a hex address', at),
      device: field(q, 'device', isHex, 'a hex address', at),
      vector: field(q, 'vector', isU16, 'an MSI-X vector', at),
      availState: field(q, 'availState', isU16, 'a 16-bit state', at),
      usedState: field(q, 'usedState', isU16, 'a 16-bit state', at),
      inFlight: field(q, 'inFlight', isCount, 'a count', at),
    };
    if (seen.has(sq.index)) throw fault('E_SNAPSHOT_SCHEMA', `queue ${sq.index} appears twice`);
    seen.add(sq.index);
    checkQueueState(layout, sq);
    return sq;
  });
  const deviceState = data.deviceState === null || data.deviceState === undefined ? null : validateDeviceState(data.deviceState);
  return {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    createdAt: typeof data.createdAt === 'string' ? data.createdAt : '',
    source: typeof data.source === 'string' ? data.source : '',
    deviceType,
    deviceTypeName: deviceTypeName(deviceType),
    mechanism,
    layout,
    features,
    featureNames: featureNames(BigInt(features), deviceType),
    queues,
    config: field(data, 'config', isHexBytes, 'hex bytes'),
    deviceState,
  };
}

function validateDeviceState(v: unknown): { bytes: string } {
  if (!isObj(v)) throw fault('E_SNAPSHOT_SCHEMA', 'deviceState must be null or { bytes: "hex" }');
  const bytes = field(v, 'bytes', isHexBytes, 'hex bytes', 'deviceState.');
  if (bytes.length / 2 > MAX_DEVICE_STATE_BYTES) {
    throw fault('E_SNAPSHOT_SCHEMA', `deviceState is ${bytes.length / 2} bytes, more than ${MAX_DEVICE_STATE_BYTES}`);
  }
  return { bytes };
}

/**
 * Index values must be possible for the layout, and the used state may not be ahead of the
 * available state nor further behind it than the ring holds.
 */
function checkQueueState(layout: Layout, q: SnapshotQueue): void {
  const where = `queue ${q.index}`;
  if (layout === 'split') {
    if (q.size < 2 || q.size > SPLIT_MAX_SIZE || (q.size & (q.size - 1)) !== 0) {
      throw fault('E_SNAPSHOT_QUEUE_SIZE', `${where}: size ${q.size} is not a split ring size (a power of two, 2–${SPLIT_MAX_SIZE})`);
    }
    const outstanding = (q.availState - q.usedState) & 0xffff;
    if (outstanding > q.size) {
      throw fault('E_SNAPSHOT_USED_AHEAD', `${where}: used state ${q.usedState} is ahead of available state ${q.availState} (or ${outstanding} apart, more than the ${q.size} the ring holds)`);
    }
    return;
  }
  if (q.size < 1 || q.size > PACKED_MAX_SIZE) {
    throw fault('E_SNAPSHOT_QUEUE_SIZE', `${where}: size ${q.size} is not a packed ring size (1–${PACKED_MAX_SIZE})`);
  }
  const avail = unpackPackedState(q.availState);
  const used = unpackPackedState(q.usedState);
  for (const [name, s] of [['available', avail], ['used', used]] as const) {
    if (s.index >= q.size) throw fault('E_SNAPSHOT_INDEX', `${where}: ${name} index ${s.index} is beyond the ${q.size}-entry packed ring`);
  }
  // Position over two laps: wrap counters start at 1, so a set wrap bit is the first lap.
  const pos = (s: { index: number; wrap: boolean }): number => s.index + (s.wrap ? 0 : q.size);
  const outstanding = (pos(avail) - pos(used) + 2 * q.size) % (2 * q.size);
  if (outstanding > q.size) {
    throw fault('E_SNAPSHOT_USED_AHEAD', `${where}: used state (${used.index}, wrap ${Number(used.wrap)}) is ahead of available state (${avail.index}, wrap ${Number(avail.wrap)})`);
  }
}

// ---- validation against a target ----

export interface SnapshotTarget {
  address: string;
  deviceType: number;
  numQueues: number;
  offered: bigint;
  queueMaxSize(q: number): number;
  /** Whether [iova, iova+len) is memory the driver owns. */
  owns(iova: bigint, len: number): boolean;
}

/** Bytes each ring area occupies (virtio 1.2 §2.7 / §2.8), to check addresses against owned memory. */
export function ringAreaSizes(layout: Layout, size: number): { desc: number; driver: number; device: number } {
  if (layout === 'split') return { desc: 16 * size, driver: 6 + 2 * size, device: 6 + 8 * size };
  return { desc: 16 * size, driver: 4, device: 4 };
}

/** Checks the snapshot fits the target; throws the first mismatch with its own code. */
export function checkSnapshotTarget(snap: DeviceSnapshot, t: SnapshotTarget): void {
  if (snap.deviceType !== t.deviceType) {
    throw fault('E_SNAPSHOT_DEVICE_TYPE', `it is of a ${snap.deviceTypeName} device; ${t.address} is ${deviceTypeName(t.deviceType)}`,
      'restore a snapshot onto a device of the same type');
  }
  const maxIndex = Math.max(...snap.queues.map((q) => q.index));
  if (maxIndex >= t.numQueues) {
    throw fault('E_SNAPSHOT_QUEUE_COUNT', `it has queue ${maxIndex}; ${t.address} has ${t.numQueues} queue(s)`,
      'the target must have at least as many queues as the source');
  }
  const features = BigInt(snap.features);
  const lacking = features & ~t.offered;
  if (lacking !== 0n) {
    throw fault('E_SNAPSHOT_FEATURES', `${t.address} does not offer ${featureNames(lacking, t.deviceType)}, which the source negotiated`,
      'restore onto a device that offers the same features');
  }
  for (const q of snap.queues) {
    const max = t.queueMaxSize(q.index);
    if (q.size > max) {
      throw fault('E_SNAPSHOT_QUEUE_SIZE', `queue ${q.index} has size ${q.size}; ${t.address} allows at most ${max}`);
    }
    const sizes = ringAreaSizes(snap.layout, q.size);
    for (const area of ['desc', 'driver', 'device'] as const) {
      if (!t.owns(BigInt(q[area]), sizes[area])) {
        throw fault('E_SNAPSHOT_ADDRESS', `queue ${q.index} ${area} area ${q[area]}+${sizes[area]} is not in this driver's memory`,
          'a snapshot can only be restored by the driver (process) whose memory holds the rings');
      }
    }
  }
}

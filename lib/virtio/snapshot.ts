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

import {
  closeSync, constants, fstatSync, fsyncSync, lstatSync, openSync, readSync, readdirSync, renameSync, rmSync, writeFileSync, type Stats,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { PACKED_MAX_SIZE, SPLIT_MAX_SIZE, deviceTypeName, featureNames, unpackPackedState } from '../spec/index.js';
import { SnapshotError, type ErrorCode } from '../errors.js';
import type { Layout } from './queue/types.js';
import type { Mechanism } from '../transport/state.js';

export const SNAPSHOT_FORMAT = 'uvirtio-snapshot';
export const SNAPSHOT_VERSION = 1;
/** How the device was stopped (defined with the state facilities, lib/transport/state.ts). */
export type { Mechanism };
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

/** What to do about each kind of bad snapshot, where the check itself has nothing more precise. */
const SNAPSHOT_HINTS: Partial<Record<ErrorCode, string>> = {
  E_SNAPSHOT_SCHEMA: 'the file is not a snapshot uvirtio wrote (or was edited); take the snapshot again',
  E_SNAPSHOT_QUEUE_COUNT: 'restore onto a device with the same queues, with the driver that took the snapshot',
  E_SNAPSHOT_QUEUE_SIZE: 'restore onto a device that allows the same queue sizes, with the driver that took the snapshot',
  E_SNAPSHOT_INDEX: 'the queue state is impossible for its ring: the file was edited or damaged; take the snapshot again',
  E_SNAPSHOT_USED_AHEAD: 'the queue state is impossible for its ring: the file was edited or damaged; take the snapshot again',
  E_SNAPSHOT_FEATURES: 'restore onto a device that offers the features the source negotiated',
  E_SNAPSHOT_ADDRESS: 'a snapshot is restored by the driver (process) whose memory holds the rings',
};

function fault(code: ErrorCode, message: string, hint?: string): SnapshotError {
  return new SnapshotError(code, `snapshot: ${message}`, hint ?? SNAPSHOT_HINTS[code]);
}

// ---- reading and writing files ----
// A snapshot file is written whole or not at all, and read with bounds: a file that is not a
// regular file (a FIFO, /dev/zero, a directory) or is larger than any snapshot is refused before
// its contents are read, so reading never blocks and never fills memory.

/** The largest snapshot file read: 65535 queues and the largest deviceState fit with room to spare. */
export const MAX_SNAPSHOT_FILE_BYTES = 32 << 20;

/**
 * The temporary file a write goes through: hidden, beside the target, named after the writer's
 * pid (".cycle-1.json.1234.tmp"). A writer killed before its rename leaves it behind; it is never
 * read as a snapshot (readSnapshotFile refuses the name), and the next write to the same target
 * removes it once its writer is gone.
 */
export function snapshotTempPath(path: string, pid = process.pid): string {
  return join(dirname(path), `.${basename(path)}.${pid}.tmp`);
}
const TEMP_NAME = /^\..+\.(\d+)\.tmp$/;

function ioFault(verb: 'read' | 'write', path: string, why: string, hint: string): SnapshotError {
  return fault('E_SNAPSHOT_IO', `cannot ${verb} ${path}: ${why}`, hint);
}

/** Why a file operation failed, in words, and what to do about it. */
function explain(e: unknown, path: string): { why: string; hint: string } {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const dir = dirname(path);
  switch (code) {
    case 'ENOENT': return { why: 'no such file or directory', hint: `check the path; for a new file, ${dir} must exist` };
    case 'ENOTDIR': return { why: `a part of ${dir} is not a directory`, hint: 'check the path' };
    case 'EACCES': case 'EPERM': case 'EROFS':
      return { why: `permission denied (${code})`, hint: `use a file and a directory you may read and write (${dir})` };
    case 'ELOOP': return { why: 'too many levels of symbolic links (a symlink loop)', hint: 'name the file itself' };
    case 'ENOSPC': case 'EDQUOT': return { why: `no space left (${code})`, hint: `free space on the file system of ${dir}` };
    case 'ENAMETOOLONG': return { why: 'the path is too long', hint: 'use a shorter path' };
    default: return { why: (e as Error).message, hint: 'check the path' };
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An existing target is replaced only when it is a regular file that is empty or a snapshot. */
function checkWriteTarget(path: string): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    const { why, hint } = explain(e, path);
    throw ioFault('write', path, why, hint);
  }
  if (st.isDirectory()) throw ioFault('write', path, 'it is a directory', `name a file in it, e.g. ${join(path, 'snapshot.json')}`);
  if (!st.isFile()) throw ioFault('write', path, `it is ${kindOf(st)}, not a regular file; it is left as it was`, 'name a new file, or an earlier snapshot to replace');
  if (st.size === 0) return;
  const head = Buffer.alloc(4096);
  let n = 0;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const { why, hint } = explain(e, path);
    throw ioFault('write', path, `it exists and cannot be checked (${why})`, hint);
  }
  const text = head.toString('utf8', 0, n);
  if (!text.includes('"format"') || !text.includes(`"${SNAPSHOT_FORMAT}"`)) {
    throw ioFault('write', path, 'it exists and is not a uvirtio snapshot; it is left as it was', 'choose another name, or remove the file first');
  }
}

/**
 * Removes the temp files killed writers left in `dir` — only those whose writer is gone, and with
 * `target`, only that file's. writeSnapshotFile() does it for its target; a program that owns a
 * directory of snapshots (`uvirtio rehearse --snapshot-dir`) does it for the directory.
 */
export function removeStaleSnapshotTemps(dir: string, target?: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (target !== undefined && name !== basename(snapshotTempPath(join(dir, target), pid))) continue;
    if (pid !== process.pid && !pidAlive(pid)) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Writes the snapshot atomically: a temp file beside the target (created exclusively, never
 * through a symlink), fsync, rename over the target, fsync of the directory. The target is
 * complete (the old one or the new one) at every moment; a failed write leaves it as it was.
 */
export function writeSnapshotFile(path: string, snap: DeviceSnapshot): void {
  checkWriteTarget(path);
  removeStaleSnapshotTemps(dirname(path), basename(path));
  const tmp = snapshotTempPath(path);
  let fd: number | undefined;
  try {
    rmSync(tmp, { force: true }); // an earlier process with this pid may have left it
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    writeFileSync(fd, JSON.stringify(snap, null, 2) + '\n');
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    try {
      if (fd !== undefined) closeSync(fd);
      rmSync(tmp, { force: true });
    } catch {
      // not ours to remove (something else sits at the temp name): the target is untouched either way
    }
    const { why, hint } = explain(e, path);
    throw ioFault('write', path, why, hint);
  }
  // The rename is durable once the directory is: best effort (some file systems refuse a directory fsync).
  try {
    const dirFd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
    try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
  } catch {
    // the file is complete either way
  }
}

/**
 * Reads and validates a snapshot file. Refused before reading: a temp file of an unfinished write,
 * anything but a regular file (opened non-blocking, so a FIFO cannot hold the caller), an empty
 * file, and a file larger than `maxBytes`.
 */
export function readSnapshotFile(path: string, maxBytes = MAX_SNAPSHOT_FILE_BYTES): DeviceSnapshot {
  if (TEMP_NAME.test(basename(path))) {
    throw ioFault('read', path, 'it is the temporary file of an unfinished write, not a snapshot',
      'its writer was killed before it finished; take the snapshot again (the next write to that name removes this file)');
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const { why, hint } = explain(e, path);
    throw ioFault('read', path, why, hint);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw ioFault('read', path, `it is ${kindOf(st)}, not a regular file`, 'pass a snapshot file written by `uvirtio snapshot`');
    const tooLarge = (size: string): SnapshotError => ioFault('read', path, `it is ${size} bytes, larger than the ${maxBytes} a snapshot file may be`,
      'this is not a snapshot file; pass one written by `uvirtio snapshot`');
    if (st.size > maxBytes) throw tooLarge(String(st.size));
    if (st.size === 0) throw fault('E_SNAPSHOT_TRUNCATED', `${path} is empty`, 'the file was cut short or never written; take the snapshot again');
    // Read at most maxBytes + 1: a file that grows while it is read is still bounded.
    const buf = Buffer.alloc(Math.min(maxBytes + 1, st.size + 1));
    let n = 0;
    for (let got = 1; got > 0 && n < buf.length;) {
      got = readSync(fd, buf, n, buf.length - n, null);
      n += got;
    }
    if (n > maxBytes) throw tooLarge(`more than ${maxBytes}`);
    text = buf.toString('utf8', 0, n);
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    const { why, hint } = explain(e, path);
    throw ioFault('read', path, why, hint);
  } finally {
    closeSync(fd);
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
// One linear character class (no repeated group: a group over megabytes of hex recursed past the stack).
const isHexBytes = (v: unknown): v is string => typeof v === 'string' && v.length % 2 === 0 && /^[0-9a-f]*$/i.test(v);

const TOP_KEYS = new Set(['format', 'version', 'createdAt', 'source', 'deviceType', 'deviceTypeName', 'mechanism', 'layout',
  'features', 'featureNames', 'queues', 'config', 'deviceState']);
const QUEUE_KEYS = new Set(['index', 'size', 'desc', 'driver', 'device', 'vector', 'availState', 'usedState', 'inFlight']);

/** A key this version does not write is refused: a file that carries one was not written by it, or was edited. */
function onlyKnownKeys(o: Obj, known: ReadonlySet<string>, at: string): void {
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw fault('E_SNAPSHOT_SCHEMA', `${at}"${k}" is not a field of a version ${SNAPSHOT_VERSION} snapshot`);
  }
}

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
  onlyKnownKeys(data, TOP_KEYS, '');
  const layout = field(data, 'layout', (v): v is Layout => v === 'split' || v === 'packed', '"split" or "packed"');
  const mechanism = field(data, 'mechanism', (v): v is Mechanism => MECHANISMS.includes(v as Mechanism), MECHANISMS.join(' | '));
  const deviceType = field(data, 'deviceType', (v): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) < 256, 'a virtio device id');
  const features = field(data, 'features', isHex, 'a hex string "0x…"');
  const rawQueues = field(data, 'queues', (v): v is unknown[] => Array.isArray(v) && v.length > 0 && v.length <= 65535, 'a non-empty array');
  const seen = new Set<number>();
  const queues = rawQueues.map((q, i) => {
    const at = `queues[${i}].`;
    if (!isObj(q)) throw fault('E_SNAPSHOT_SCHEMA', `queues[${i}] must be an object`);
    onlyKnownKeys(q, QUEUE_KEYS, at);
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
  onlyKnownKeys(v, new Set(['bytes']), 'deviceState.');
  const raw = v.bytes;
  if (typeof raw === 'string' && raw.length / 2 > MAX_DEVICE_STATE_BYTES) {
    throw fault('E_SNAPSHOT_SCHEMA', `deviceState is ${raw.length / 2} bytes, more than ${MAX_DEVICE_STATE_BYTES}`,
      'a device with more extra state than this cannot be carried in a snapshot file');
  }
  const bytes = field(v, 'bytes', isHexBytes, 'hex bytes', 'deviceState.');
  // A device with no extra state has deviceState null; it never hands over zero bytes.
  if (bytes.length === 0) throw fault('E_SNAPSHOT_SCHEMA', 'deviceState.bytes is empty (a device without extra state has deviceState null)');
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

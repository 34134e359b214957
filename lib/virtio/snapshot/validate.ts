// Snapshot validation (docs/snapshot.md#validation). First on its own: the structure (the fields
// docs/snapshot.schema.json describes, no unknown keys) and the semantics a schema cannot say (queue
// sizes legal for the layout, states possible for their ring, used never ahead of available).
// Then against the target device: type, queue count and sizes, features, ring addresses.
// Every refusal is a SnapshotError with its own E_SNAPSHOT_* code and a hint.

import { PACKED_MAX_SIZE, SPLIT_MAX_SIZE, deviceTypeName, featureNames, unpackPackedState } from '../../spec/index.js';
import type { Layout } from '../../spec/ring.js';
import { SnapshotError, type ErrorCode } from '../../errors.js';
import { rendered, safeIsArray, shown, thrownMessage } from '../../util/shown.js';
import {
  MAX_DEVICE_STATE_BYTES, MECHANISMS, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, type DeviceSnapshot, type Mechanism, type SnapshotQueue,
} from './format.js';

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

/** A SnapshotError with the code's generic hint unless the check names its own (internal to the snapshot folder). */
export function fault(code: ErrorCode, message: string, hint?: string): SnapshotError {
  return new SnapshotError(code, `snapshot: ${message}`, hint ?? SNAPSHOT_HINTS[code]);
}

/** `text` without a leading UTF-8 byte order mark (an editor may add one; JSON.parse refuses it). */
export function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Parses JSON text and validates it as a snapshot on its own (no device needed).
 * @param text the file's contents (a leading byte order mark is ignored).
 * @param where names the input in messages (a path, or "input").
 * @throws SnapshotError E_SNAPSHOT_TRUNCATED (text cut short), E_SNAPSHOT_NOT_JSON,
 *   E_SNAPSHOT_SCHEMA (nested more than 32 levels, found before parsing; a key
 *   twice in one object), and every code {@link validateSnapshot} throws.
 */
export function parseSnapshot(text: string, where = 'input'): DeviceSnapshot {
  if (typeof text !== 'string') {
    throw fault('E_SNAPSHOT_SCHEMA', `${where}: a snapshot is JSON text, got ${shown(text)}`, 'pass the file\'s contents as a string (readFileSync(path, \'utf8\')), or use readSnapshotFile');
  }
  return validateSnapshot(parseSnapshotJson(text, where));
}

/**
 * The JSON step of {@link parseSnapshot}, alone: `text` (a leading byte order mark ignored) checked
 * for nesting before it is parsed, parsed, and checked for a key given twice; the value, not yet
 * validated as a snapshot. Throws what parseSnapshot throws for those (E_SNAPSHOT_TRUNCATED,
 * E_SNAPSHOT_NOT_JSON, E_SNAPSHOT_SCHEMA), naming the input `where`.
 */
export function parseSnapshotJson(text: string, where: string): unknown {
  text = withoutBom(text);
  // Only text that opens with a container can nest (anything else is refused below without a scan).
  const scan = /^\s*[{[]/.test(text) ? scanJson(text) : {};
  if (scan.tooDeep !== undefined) {
    throw fault('E_SNAPSHOT_SCHEMA', `${where} nests more than ${MAX_JSON_DEPTH} levels deep (at character ${scan.tooDeep}); a snapshot nests ${SNAPSHOT_DEPTH}`);
  }
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
  if (scan.duplicate !== undefined) {
    throw fault('E_SNAPSHOT_SCHEMA', `${where}: the key ${rendered(scan.duplicate.key)} appears twice in ${scan.duplicate.at} (JSON readers disagree on which one counts)`);
  }
  return data;
}

/** How deep a snapshot's JSON nests: the top-level object, queues, a queue. */
const SNAPSHOT_DEPTH = 3;
/** JSON nested deeper than this is refused before it is parsed (a 32 MiB file of "[" would take seconds and gigabytes). */
export const MAX_JSON_DEPTH = 32;

/**
 * One linear pass over JSON text, before it is parsed: where it first nests deeper than
 * {@link MAX_JSON_DEPTH} (a character offset), and the first key that appears twice in one object
 * of the {@link SNAPSHOT_DEPTH} outer levels (JSON.parse keeps the last silently; another reader
 * may keep the first). Never throws; on text that is not JSON it stops early (the parse says why).
 */
export function scanJson(text: string): { tooDeep?: number; duplicate?: { key: string; at: string } } {
  const keys: (Set<string> | null)[] = []; // per open container of the outer levels: its keys, null for an array
  const names: string[] = [];
  let depth = 0;
  let expectKey = false;
  let duplicate: { key: string; at: string } | undefined;
  for (let i = 0, n = text.length; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: find its closing quote (one not escaped by an odd run of backslashes)
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return duplicate ? { duplicate } : {};
        let b = end - 1;
        while (text.charCodeAt(b) === 0x5c) b--;
        if ((end - 1 - b) % 2 === 0) break;
      }
      if (expectKey && depth <= SNAPSHOT_DEPTH && duplicate === undefined) {
        let key = text.slice(i + 1, end);
        try {
          if (key.includes('\\')) key = JSON.parse(text.slice(i, end + 1)) as string;
        } catch {
          return {};
        }
        const set = keys[depth - 1]!;
        if (set.has(key)) duplicate = { key, at: names[depth - 1]! };
        set.add(key);
        if (depth < SNAPSHOT_DEPTH) names[depth] = key; // names the object or array this key opens
      }
      expectKey = false;
      i = end;
    } else if (c === 0x7b || c === 0x5b) { // { [
      depth++;
      if (depth > MAX_JSON_DEPTH) return { tooDeep: i, ...(duplicate ? { duplicate } : {}) };
      expectKey = c === 0x7b;
      if (depth <= SNAPSHOT_DEPTH) {
        keys[depth - 1] = expectKey ? new Set() : null;
        names[depth - 1] = depth === 1 ? 'the top level' : keys[depth - 2] === null ? `${names[depth - 2]}[]` : names[depth - 1] ?? '';
      }
    } else if (c === 0x7d || c === 0x5d) { // } ]
      depth--;
      expectKey = false;
    } else if (c === 0x2c) { // ,
      expectKey = depth >= 1 && depth <= SNAPSHOT_DEPTH && keys[depth - 1] !== null;
    }
  }
  return duplicate ? { duplicate } : {};
}

// ---- validation on its own ----

// Every value is untrusted: parsed from a file, or handed over by a library caller (a getter or a
// Proxy trap may throw, an object may hold a cycle or a bigint). It is read through read() and
// keysOf(), which turn a throw into E_SNAPSHOT_SCHEMA, and shown with rendered() (bounded, never
// throws), never with JSON.stringify or String().

type Obj = Record<string, unknown>;
function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !safeIsArray(v);
}
const UNREADABLE_HINT = 'pass a snapshot as VirtioDevice.snapshot() or readSnapshotFile() returns it (plain data: no getters, no Proxies)';
/** o[key], E_SNAPSHOT_SCHEMA when reading it throws (a getter, a Proxy trap); `name` names it in the message. */
function read(o: object, key: string | number, at: string, name = `${at}${key}`): unknown {
  try {
    return (o as Obj)[key];
  } catch (e) {
    throw new SnapshotError('E_SNAPSHOT_SCHEMA', `snapshot: ${name} cannot be read (${thrownMessage(e)})`, UNREADABLE_HINT, { cause: e });
  }
}
/** Object.keys(o), E_SNAPSHOT_SCHEMA when it throws (a Proxy trap). */
function keysOf(o: object, at: string): string[] {
  try {
    return Object.keys(o);
  } catch (e) {
    throw new SnapshotError('E_SNAPSHOT_SCHEMA', `snapshot: the fields of ${at || 'the snapshot'} cannot be listed (${thrownMessage(e)})`, UNREADABLE_HINT, { cause: e });
  }
}
/** A key as a message shows it: quoted, escaped, cut (a key may be megabytes long or hold control characters). */
const keyShown = (k: string): string => rendered(k);
function field<T>(o: Obj, key: string, check: (v: unknown) => v is T, what: string, at = ''): T {
  const v = read(o, key, at);
  if (!check(v)) throw fault('E_SNAPSHOT_SCHEMA', `${at}${key} must be ${what}, found ${v === undefined ? 'nothing' : rendered(v)}`);
  return v;
}
/**
 * An informational field (createdAt, source, deviceTypeName, featureNames): absent reads as '', a
 * string is kept, anything else is E_SNAPSHOT_SCHEMA naming the field.
 */
function optionalString(o: Obj, key: string): string {
  const v = read(o, key, '');
  if (v === undefined) return '';
  if (typeof v !== 'string') throw fault('E_SNAPSHOT_SCHEMA', `${key} must be a string (it is informational), found ${rendered(v)}`);
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
  for (const k of keysOf(o, at.slice(0, -1))) {
    if (!known.has(k)) throw fault('E_SNAPSHOT_SCHEMA', `${at}${keyShown(k)} is not a field of a version ${SNAPSHOT_VERSION} snapshot`);
  }
}

/**
 * Checks every field of an untrusted object (parsed JSON) and returns it typed, with
 * deviceTypeName and featureNames recomputed (docs/snapshot.md#validation).
 * @param data any value: parsed JSON, or what a program built (a field whose getter or Proxy trap
 *   throws is E_SNAPSHOT_SCHEMA; messages show values bounded, see rendered()).
 * @throws SnapshotError E_SNAPSHOT_SCHEMA (structure: a missing, mistyped or unknown field, a
 *   duplicate queue, empty or oversized deviceState, a field that cannot be read), E_SNAPSHOT_VERSION (not version 1),
 *   E_SNAPSHOT_QUEUE_SIZE (a size not legal for the layout, virtio 1.2 §2.7 / §2.8),
 *   E_SNAPSHOT_INDEX (a packed index beyond the ring), E_SNAPSHOT_USED_AHEAD (used state ahead of
 *   available state, or further behind than the ring holds).
 */
export function validateSnapshot(data: unknown): DeviceSnapshot {
  if (!isObj(data)) throw fault('E_SNAPSHOT_SCHEMA', `the top level must be an object, found ${rendered(data)}`);
  const format = read(data, 'format', '');
  if (format !== SNAPSHOT_FORMAT) {
    throw fault('E_SNAPSHOT_SCHEMA', `format must be "${SNAPSHOT_FORMAT}", found ${format === undefined ? 'nothing' : rendered(format)}`, 'this is not a uvirtio snapshot');
  }
  const version = read(data, 'version', '');
  if (version !== SNAPSHOT_VERSION) {
    throw fault('E_SNAPSHOT_VERSION', `version ${version === undefined ? '(none)' : rendered(version)} is not supported (this uvirtio reads version ${SNAPSHOT_VERSION})`,
      'take the snapshot again with this version of uvirtio');
  }
  onlyKnownKeys(data, TOP_KEYS, '');
  const layout = field(data, 'layout', (v): v is Layout => v === 'split' || v === 'packed', '"split" or "packed"');
  const mechanism = field(data, 'mechanism', (v): v is Mechanism => MECHANISMS.includes(v as Mechanism), MECHANISMS.join(' | '));
  const deviceType = field(data, 'deviceType', (v): v is number => Number.isInteger(v) && (v as number) > 0 && (v as number) < 256, 'a virtio device id');
  const features = field(data, 'features', isHex, 'a hex string "0x…"');
  const rawQueues = field(data, 'queues', safeIsArray, 'a non-empty array');
  const n = read(rawQueues, 'length', 'queues.');
  if (typeof n !== 'number' || n < 1 || n > 65535) throw fault('E_SNAPSHOT_SCHEMA', `queues must hold 1–65535 queues, found ${rendered(n)}`);
  const seen = new Set<number>();
  const queues: SnapshotQueue[] = [];
  // Index by index (never rawQueues.map: a caller's array may override its species or be a Proxy).
  for (let i = 0; i < n; i++) {
    const q = read(rawQueues, i, '', `queues[${i}]`);
    const at = `queues[${i}].`;
    if (!isObj(q)) throw fault('E_SNAPSHOT_SCHEMA', `queues[${i}] must be an object, found ${rendered(q)}`);
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
    queues.push(sq);
  }
  const rawState = read(data, 'deviceState', '');
  const deviceState = rawState === null || rawState === undefined ? null : validateDeviceState(rawState);
  // The informational fields are typed like the rest (docs/snapshot.schema.json): a file that has
  // a number for createdAt was not written by uvirtio, and a tool showing it must get a string.
  const createdAt = optionalString(data, 'createdAt');
  const source = optionalString(data, 'source');
  optionalString(data, 'deviceTypeName'); // recomputed below, never trusted; typed all the same
  optionalString(data, 'featureNames');
  return {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    createdAt,
    source,
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
  if (!isObj(v)) throw fault('E_SNAPSHOT_SCHEMA', `deviceState must be null or { bytes: "hex" }, found ${rendered(v)}`);
  onlyKnownKeys(v, new Set(['bytes']), 'deviceState.');
  const raw = read(v, 'bytes', 'deviceState.');
  if (typeof raw === 'string' && raw.length / 2 > MAX_DEVICE_STATE_BYTES) {
    throw fault('E_SNAPSHOT_SCHEMA', `deviceState is ${Math.ceil(raw.length / 2)} bytes (${raw.length} hex digits), more than ${MAX_DEVICE_STATE_BYTES}`,
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

/** What {@link checkSnapshotTarget} needs to know of the device a snapshot is restored onto. */
export interface SnapshotTarget {
  /** The target's address, for messages. */
  address: string;
  /** Its virtio device id. */
  deviceType: number;
  /** num_queues of the device (virtio 1.2 §4.1.4.3). */
  numQueues: number;
  /** Feature bits the device offers. */
  offered: bigint;
  /** Largest size queue q allows (queue_size as read after reset), entries. */
  queueMaxSize(q: number): number;
  /** Whether [iova, iova+len) is memory the driver owns. */
  owns(iova: bigint, len: number): boolean;
}

/**
 * Bytes each ring area of a queue of `size` entries occupies (virtio 1.2 §2.7: desc 16·N, avail
 * 6 + 2·N, used 6 + 8·N; §2.8: desc 16·N, two 4-byte event suppression structures), to check
 * addresses against owned memory.
 */
export function ringAreaSizes(layout: Layout, size: number): {
  /** Bytes of the descriptor table. */
  desc: number;
  /** Bytes of the driver area. */
  driver: number;
  /** Bytes of the device area. */
  device: number;
} {
  if (layout === 'split') return { desc: 16 * size, driver: 6 + 2 * size, device: 6 + 8 * size };
  return { desc: 16 * size, driver: 4, device: 4 };
}

/**
 * Checks a validated snapshot fits the target device; throws the first mismatch.
 * @throws SnapshotError E_SNAPSHOT_DEVICE_TYPE, E_SNAPSHOT_QUEUE_COUNT (a queue index the target
 *   lacks), E_SNAPSHOT_FEATURES (the source negotiated a feature the target does not offer),
 *   E_SNAPSHOT_QUEUE_SIZE (larger than the target allows), E_SNAPSHOT_ADDRESS (a ring area outside
 *   the memory this driver owns).
 */
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

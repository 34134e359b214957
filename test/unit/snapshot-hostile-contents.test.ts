// Hostile snapshot contents (fixer A3, after breaker 30): every value from a snapshot file, and every
// value a library caller hands validateSnapshot, is a typed E_SNAPSHOT_* refusal with a hint or a
// correct load, quickly; messages show values bounded; a write replaces only a file whose own
// header says it is a snapshot.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Feature, bit } from '../../lib/spec/index.js';
import {
  MAX_SNAPSHOT_FILE_BYTES, parseSnapshot, readSnapshotFile, validateSnapshot, writeSnapshotFile, type DeviceSnapshot,
} from '../../lib/virtio/snapshot/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { rendered } from '../../lib/util/shown.js';
import { tempDir } from '../support/tmp.js';

const dir = tempDir('uvirtio-snap-hostile-');

function good(): DeviceSnapshot {
  return {
    format: 'uvirtio-snapshot', version: 1, createdAt: '2026-11-23T00:00:00Z', source: 'sim:blk',
    deviceType: 2, deviceTypeName: 'blk', mechanism: 'ring-state', layout: 'split',
    features: '0x' + (bit(Feature.VERSION_1) | bit(Feature.RING_STATE)).toString(16), featureNames: '',
    queues: [{ index: 0, size: 8, desc: '0x100000000', driver: '0x100001000', device: '0x100002000', vector: 1, availState: 4, usedState: 2, inFlight: 2 }],
    config: '', deviceState: null,
  };
}
const text = JSON.stringify(good());
/** `text` with the value of `key` (a string "@@" placed there) replaced by raw JSON. */
const withRaw = (fields: Record<string, unknown>, raw: string): string => JSON.stringify({ ...good(), ...fields }).replace('"@@"', raw);

/** 'loaded' or 'CODE: message', and how long it took (ms); a foreign throw fails the test. */
function outcome(t: { fail(m: string): void; ok(v: unknown, m: string): void }, f: () => unknown): { what: string; ms: number } {
  const t0 = performance.now();
  let what = 'loaded';
  try {
    f();
  } catch (e) {
    if (!(e instanceof UvirtioError)) {
      t.fail(`a foreign ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      what = 'foreign';
    } else {
      t.ok(e.hint, `${e.code} has a hint`);
      t.ok(e.message.length < 600, `the message is bounded (${e.message.length} characters)`);
      what = `${e.code}: ${e.message}`;
    }
  }
  return { what, ms: performance.now() - t0 };
}

t.test('hostile file contents: a typed refusal or a correct load, quickly', async (t) => {
  const wide: Record<string, number> = {};
  for (let i = 0; i < 10_000; i++) wide[`k${i}`] = i;
  const cases: [string, string, RegExp][] = [
    ['10,000 keys wide at the top', JSON.stringify({ ...good(), ...wide }), /^E_SNAPSHOT_SCHEMA: .*"k0" is not a field/],
    ['10,000 keys wide in a queue', JSON.stringify({ ...good(), queues: [{ ...good().queues[0], ...wide }] }), /^E_SNAPSHOT_SCHEMA: .*queues\[0\]\."k0"/],
    ['10,000 keys wide as config', JSON.stringify({ ...good(), config: wide }), /^E_SNAPSHOT_SCHEMA: .*config must be hex bytes, found \{"k0": 0, .*10000 in all\}/],
    ['1e400 as deviceType', text.replace('"deviceType":2', '"deviceType":1e400'), /^E_SNAPSHOT_SCHEMA: .*deviceType .*found Infinity/],
    ['1e400 as version', text.replace('"version":1', '"version":1e400'), /^E_SNAPSHOT_VERSION: .*version Infinity/],
    ['-1e400 as a queue size', text.replace('"size":8', '"size":-1e400'), /^E_SNAPSHOT_SCHEMA: .*size .*found -Infinity/],
    ['"__proto__" at the top', text.replace('{', '{"__proto__":{"polluted":1},'), /^E_SNAPSHOT_SCHEMA: .*"__proto__" is not a field/],
    ['"__proto__" in a queue', text.replace('"queues":[{', '"queues":[{"__proto__":{"size":4},'), /^E_SNAPSHOT_SCHEMA: .*queues\[0\]\."__proto__"/],
    ['a duplicate top-level key', text.replace('{', '{"deviceType":1,'), /^E_SNAPSHOT_SCHEMA: .*"deviceType" appears twice in the top level/],
    ['a duplicate format, spelt with an escape', text.replace('{', '{"\\u0066ormat":"x",'), /^E_SNAPSHOT_SCHEMA: .*"format" appears twice/],
    ['a duplicate queue key', text.replace('"queues":[{', '"queues":[{"size":2,'), /^E_SNAPSHOT_SCHEMA: .*"size" appears twice in queues\[\]/],
    ['a UTF-8 BOM', '\ufeff' + text, /^loaded$/],
    ['two BOMs', '\ufeff\ufeff' + text, /^E_SNAPSHOT_NOT_JSON: /],
    ['5000 deep as config', withRaw({ config: '@@' }, '['.repeat(5000) + ']'.repeat(5000)), /^E_SNAPSHOT_SCHEMA: .*nests more than 32 levels/],
    ['30 deep as config', withRaw({ config: '@@' }, '['.repeat(30) + ']'.repeat(30)), /^E_SNAPSHOT_SCHEMA: .*config must be hex bytes, found \[\[\[…\]\]\]/],
    ['a key of control characters', withRaw({ '@@': 1 }, JSON.stringify('\u0007'.repeat(100_000))), /^E_SNAPSHOT_SCHEMA: snapshot: "(\\u0007){6}…" is not a field/],
  ];
  for (const [name, body, expect] of cases) {
    const path = join(dir, 'case.json');
    writeFileSync(path, body);
    const { what, ms } = outcome(t, () => readSnapshotFile(path));
    t.match(what, expect, name);
    t.ok(ms < 2000, `${name}: ${ms.toFixed(0)} ms`);
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype polluted');
});

t.test('32 MiB - 1 byte files: a load or a typed refusal, in bounded time', async (t) => {
  const max = MAX_SNAPSHOT_FILE_BYTES - 1;
  const fill = (body: string, pad: (n: number) => string): string => body.replace('"@@"', pad(max - Buffer.byteLength(body) + 4));
  const cases: [string, string, RegExp][] = [
    ['a snapshot padded with spaces', text + ' '.repeat(max - text.length), /^loaded$/],
    ['a 32 MiB source', fill(withRaw({ source: '@@' }, '"@@"'), (n) => JSON.stringify('x'.repeat(n - 2))), /^loaded$/],
    ['32 MiB of config', fill(withRaw({ config: '@@' }, '"@@"'), (n) => JSON.stringify('a'.repeat(n - 3) + 'z')), /^E_SNAPSHOT_SCHEMA: .*config must be hex bytes, found "a{40}…"/],
    ['32 MiB of deviceState', fill(withRaw({ deviceState: { bytes: '@@' } }, '"@@"'), (n) => JSON.stringify('a'.repeat(n - 2))), /^E_SNAPSHOT_SCHEMA: .*deviceState is \d+ bytes/],
    ['32 MiB of "["', '['.repeat(max), /^E_SNAPSHOT_SCHEMA: .*nests more than 32 levels/],
    ['32 MiB of "x"', 'x'.repeat(max), /^E_SNAPSHOT_NOT_JSON: /],
  ];
  for (const [name, body, expect] of cases) {
    t.equal(Buffer.byteLength(body), max, `${name}: ${max} bytes`);
    const path = join(dir, 'big.json');
    writeFileSync(path, body);
    const { what, ms } = outcome(t, () => readSnapshotFile(path));
    t.match(what, expect, name);
    t.ok(ms < 5000, `${name}: ${ms.toFixed(0)} ms`);
  }
});

t.test('what a library caller hands validateSnapshot: typed, never a raw TypeError', async (t) => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const species = [...good().queues];
  (species as unknown as { constructor: unknown }).constructor = { [Symbol.species]: function () { throw new Error('species'); } };
  const cases: [string, unknown, RegExp][] = [
    ['a cycle', { ...good(), config: cyclic }, /^E_SNAPSHOT_SCHEMA: .*found \{"self": \{"self": \{…\}\}\}/],
    ['a bigint', { ...good(), deviceType: 2n }, /^E_SNAPSHOT_SCHEMA: .*found 2n/],
    ['a symbol', { ...good(), config: Symbol('x') }, /^E_SNAPSHOT_SCHEMA: .*found a symbol/],
    ['a throwing toJSON', { ...good(), config: { toJSON() { throw new Error('no'); } } }, /^E_SNAPSHOT_SCHEMA: .*found \{"toJSON": a function\}/],
    ['a throwing getter', Object.defineProperty({ ...good() }, 'layout', { get() { throw new Error('getter'); }, enumerable: true }), /^E_SNAPSHOT_SCHEMA: .*layout cannot be read \(getter\)/],
    ['a Proxy whose get throws', new Proxy({}, { get() { throw new Error('trap'); } }), /^E_SNAPSHOT_SCHEMA: .*format cannot be read \(trap\)/],
    ['a Proxy whose ownKeys throws', new Proxy({ ...good() }, { ownKeys() { throw new Error('keys'); } }), /^E_SNAPSHOT_SCHEMA: .*cannot be listed \(keys\)/],
    ['a revoked Proxy', revoked.proxy, /^E_SNAPSHOT_SCHEMA: .*cannot be read/],
    ['a revoked Proxy as config', { ...good(), config: revoked.proxy }, /^E_SNAPSHOT_SCHEMA: .*found a Proxy/],
    ['queues whose length throws', { ...good(), queues: new Proxy(good().queues, { get(o, k) { if (k === 'length') throw new Error('len'); return Reflect.get(o, k); } }) }, /^E_SNAPSHOT_SCHEMA: .*queues\.length cannot be read/],
    ['queues with a hole', { ...good(), queues: new Array(2) }, /^E_SNAPSHOT_SCHEMA: .*queues\[0\] must be an object/],
    ['queues with a throwing species', { ...good(), queues: species }, /^loaded$/],
    ['a prototype-less copy', Object.assign(Object.create(null), good()), /^loaded$/],
    ['a megabyte string', 'x'.repeat(1 << 20), /^E_SNAPSHOT_SCHEMA: .*found "x{40}…"$/],
  ];
  for (const [name, value, expect] of cases) t.match(outcome(t, () => validateSnapshot(value)).what, expect, name);
  t.match(outcome(t, () => parseSnapshot(Object.create(null) as string)).what, /^E_SNAPSHOT_SCHEMA: /, 'parseSnapshot of a prototype-less object');
});

t.test('rendered(): bounded and never throws', async (t) => {
  const deep: unknown[] = [];
  let at = deep;
  for (let i = 0; i < 100_000; i++) at = (at[0] = []) as unknown[];
  t.equal(rendered(deep), '[[[…]]]');
  t.equal(rendered('a"b\n'), '"a\\"b\\n"');
  t.equal(rendered(JSON.parse('1e400')), 'Infinity', 'what 1e400 parses to');
  t.equal(rendered(Object.create(null)), '{}');
  t.ok(rendered({ [('k').repeat(1000)]: 'v'.repeat(1000), b: 1 }).length <= 120);
  t.equal(rendered(Object.defineProperty({}, 'a', { get() { throw new Error('x'); }, enumerable: true })), '{"a": a getter}');
  t.equal(rendered(new Proxy({}, {})), 'a Proxy');
});

t.test('a write replaces only a file whose own header says it is a snapshot', async (t) => {
  const cases: [string, string, boolean][] = [
    ['the JSON Schema', readFileSync(join(process.cwd(), 'docs', 'snapshot.schema.json'), 'utf8'), false],
    ['notes quoting the format', 'check that "format" is "uvirtio-snapshot"\n', false],
    ['a snapshot inside another object', JSON.stringify({ wrapper: good() }), false],
    ['a snapshot in an array', JSON.stringify([good()]), false],
    ['a snapshot with version 0', JSON.stringify({ ...good(), version: 0 }), false],
    ['a snapshot cut short', text.slice(0, -3), false],
    ['a snapshot with a duplicate key', text.replace('{', '{"format":"x",'), false],
    ['32 MiB - 1 of "["', '['.repeat(MAX_SNAPSHOT_FILE_BYTES - 1), false],
    ['a snapshot', text, true],
    ['a snapshot with a BOM', '\ufeff' + text, true],
    ['a snapshot of a later version', JSON.stringify({ ...good(), version: 2 }), true],
  ];
  for (const [name, before, replaced] of cases) {
    const path = join(dir, 'target.json');
    writeFileSync(path, before);
    const { what, ms } = outcome(t, () => writeSnapshotFile(path, good()));
    if (replaced) {
      t.equal(what, 'loaded', `${name}: replaced`);
      t.same(readSnapshotFile(path).queues, good().queues, `${name}: now the new snapshot`);
    } else {
      t.match(what, /^E_SNAPSHOT_IO: .*it exists and is not a uvirtio snapshot \(.+\); it is left as it was/, `${name}: refused`);
      t.ok(readFileSync(path, 'utf8') === before, `${name}: left byte for byte`);
    }
    t.ok(ms < 3000, `${name}: ${ms.toFixed(0)} ms`);
  }
});

// docs/snapshot.schema.json, the published JSON Schema of the snapshot format, against real
// snapshots of the reference device (split and packed; every mechanism it offers; held requests in
// deviceState) and against the structurally bad snapshots uvirtio itself refuses. A tool that
// validates a file with the schema and uvirtio agree on every structural question.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import {
  BlkDriver, NetDriver, VirtioPciTransport, createSimDevice, parseSnapshot, type DeviceSnapshot, type Mechanism,
} from '../../index.js';
import { codeOf } from '../support/codes.js';

const schema = JSON.parse(readFileSync(join(process.cwd(), 'docs', 'snapshot.schema.json'), 'utf8')) as object;
const ajv = new Ajv({ allErrors: true });
const validate = ajv.compile(schema);
const schemaErrors = (data: unknown): string => (validate(data) ? 'valid' : ajv.errorsText(validate.errors));

const STATES = [
  { name: 'ring-state, hold', state: { ringState: true }, mode: 'hold', mechanism: 'ring-state' },
  { name: 'ring-state, drain', state: { ringState: true }, mode: 'drain', mechanism: 'ring-state' },
  { name: 'suspend', state: { suspend: true }, mode: 'drain', mechanism: 'suspend' },
  { name: 'none (quiesce)', state: {}, mode: 'drain', mechanism: 'quiesce' },
] as const;

/** Takes a snapshot of a device in the middle of traffic, restores it, and returns it as JSON text. */
async function liveSnapshot(type: 'blk' | 'net', layout: 'split' | 'packed', s: (typeof STATES)[number]): Promise<{ text: string; snap: DeviceSnapshot; mechanism: Mechanism }> {
  const common = { state: s.state, mode: s.mode, completion: { latencyMs: 5 } };
  if (type === 'blk') {
    const sim = createSimDevice({ type: 'blk', queues: 2, ...common });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, depth: 16 });
    try {
      const writes = Array.from({ length: 12 }, (_, k) => blk.write(k * 8, new Uint8Array(4096).fill(k)));
      await new Promise((r) => setImmediate(r));
      const mechanism = await blk.stop();
      const snap = blk.snapshot();
      const text = JSON.stringify(snap, null, 2);
      await blk.reinit(parseSnapshot(text));
      await Promise.all(writes);
      return { text, snap, mechanism };
    } finally {
      await blk.close();
    }
  }
  const sim = createSimDevice({ type: 'net', queuePairs: 2, ...common });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout });
  try {
    const sends = [0, 1, 1, 0].map((p) => net.send(new Uint8Array(200).fill(p), {}, p));
    await new Promise((r) => setImmediate(r));
    const mechanism = await net.stop();
    const snap = net.snapshot();
    const text = JSON.stringify(snap, null, 2);
    await net.reinit(parseSnapshot(text));
    await Promise.all(sends);
    return { text, snap, mechanism };
  } finally {
    await net.close();
  }
}

t.test('every real snapshot of the reference device validates against the schema', async (t) => {
  let held = 0;
  for (const type of ['blk', 'net'] as const) {
    for (const layout of ['split', 'packed'] as const) {
      for (const s of STATES) {
        const { text, snap, mechanism } = await liveSnapshot(type, layout, s);
        const what = `${type} ${layout}, ${s.name}`;
        t.equal(mechanism, s.mechanism, `${what}: the mechanism asked for`);
        t.equal(snap.layout, layout, `${what}: the layout asked for`);
        t.equal(schemaErrors(JSON.parse(text)), 'valid', `${what}: valid`);
        if (snap.deviceState !== null) held++;
      }
    }
  }
  t.ok(held > 0, `held requests travelled in deviceState in ${held} of the snapshots`);
});

/** A valid snapshot to break, one field at a time. */
function good(): Record<string, unknown> & DeviceSnapshot {
  return {
    format: 'uvirtio-snapshot', version: 1, createdAt: '2026-11-29T00:00:00Z', source: 'sim:blk',
    deviceType: 2, deviceTypeName: 'blk', mechanism: 'ring-state', layout: 'split',
    features: '0x100000000', featureNames: 'VERSION_1',
    queues: [{ index: 0, size: 8, desc: '0x100000000', driver: '0x100001000', device: '0x100002000', vector: 1, availState: 65534, usedState: 65530, inFlight: 4 }],
    config: '', deviceState: { bytes: '0102' },
  };
}

// Each mutation is refused by uvirtio with E_SNAPSHOT_SCHEMA or E_SNAPSHOT_VERSION; the schema must refuse it too.
const STRUCTURAL: [string, (s: Record<string, unknown> & DeviceSnapshot) => unknown][] = [
  ['not an object', () => []],
  ['another format', (s) => { s.format = 'other' as 'uvirtio-snapshot'; }],
  ['version 2', (s) => { s.version = 2 as 1; }],
  ['an unknown top-level field', (s) => { s.extra = 1; }],
  ['an unknown queue field', (s) => { (s.queues[0] as unknown as Record<string, unknown>).extra = 1; }],
  ['no layout', (s) => { delete (s as Record<string, unknown>).layout; }],
  ['layout "ring"', (s) => { s.layout = 'ring' as 'split'; }],
  ['mechanism "magic"', (s) => { s.mechanism = 'magic' as Mechanism; }],
  ['device type 0', (s) => { s.deviceType = 0; }],
  ['device type 256', (s) => { s.deviceType = 256; }],
  ['device type 2.5', (s) => { s.deviceType = 2.5; }],
  ['features not hex', (s) => { s.features = '42'; }],
  ['no queues', (s) => { s.queues = []; }],
  ['queues not an array', (s) => { (s as Record<string, unknown>).queues = {}; }],
  ['a queue that is not an object', (s) => { (s.queues as unknown[])[0] = 7; }],
  ['a queue without inFlight', (s) => { delete (s.queues[0] as unknown as Record<string, unknown>).inFlight; }],
  ['desc not hex', (s) => { s.queues[0]!.desc = 'nowhere'; }],
  ['availState over 16 bits', (s) => { s.queues[0]!.availState = 70000; }],
  ['usedState negative', (s) => { s.queues[0]!.usedState = -1; }],
  ['vector a string', (s) => { (s.queues[0] as unknown as Record<string, unknown>).vector = '1'; }],
  ['size over 16 bits', (s) => { s.queues[0]!.size = 70000; }],
  ['inFlight over 32 bits', (s) => { s.queues[0]!.inFlight = 2 ** 32; }],
  ['a duplicate queue', (s) => { s.queues.push({ ...s.queues[0]! }); }],
  ['config odd hex', (s) => { s.config = 'abc'; }],
  ['config missing', (s) => { delete (s as Record<string, unknown>).config; }],
  ['deviceState odd hex', (s) => { s.deviceState = { bytes: 'abc' }; }],
  ['deviceState not hex', (s) => { s.deviceState = { bytes: 'zz' }; }],
  ['deviceState empty', (s) => { s.deviceState = { bytes: '' }; }],
  ['deviceState with another field', (s) => { s.deviceState = { bytes: '01', more: 1 } as { bytes: string }; }],
  ['deviceState a string', (s) => { (s as Record<string, unknown>).deviceState = '0102'; }],
  ['deviceState over 1 MiB', (s) => { s.deviceState = { bytes: '00'.repeat((1 << 20) + 1) }; }],
  // The informational fields are untrusted too (found by a breaker: they were taken as they came, or dropped).
  ['createdAt a number', (s) => { (s as Record<string, unknown>).createdAt = 1732838400; }],
  ['createdAt null', (s) => { (s as Record<string, unknown>).createdAt = null; }],
  ['source an object', (s) => { (s as Record<string, unknown>).source = { path: '/dev/vfio/1' }; }],
  ['deviceTypeName a number', (s) => { (s as Record<string, unknown>).deviceTypeName = 2; }],
  ['featureNames an array', (s) => { (s as Record<string, unknown>).featureNames = ['VERSION_1']; }],
];

t.test('the schema refuses what uvirtio refuses as structure', async (t) => {
  t.equal(schemaErrors(good()), 'valid', 'the unbroken snapshot is valid');
  t.equal(codeOf(() => parseSnapshot(JSON.stringify(good()))), 'no error', 'and uvirtio takes it');
  const largest = good();
  largest.deviceState = { bytes: 'ab'.repeat(1 << 20) };
  t.equal(schemaErrors(largest), 'valid', 'deviceState of exactly 1 MiB is valid');
  t.equal(codeOf(() => parseSnapshot(JSON.stringify(largest))), 'no error', 'for uvirtio too');
  for (const [name, breakIt] of STRUCTURAL) {
    const s = good();
    const replaced = breakIt(s);
    const data = replaced === undefined ? s : replaced;
    const code = codeOf(() => parseSnapshot(JSON.stringify(data)));
    t.ok(code === 'E_SNAPSHOT_SCHEMA' || code === 'E_SNAPSHOT_VERSION', `${name}: uvirtio refuses it (${code})`);
    t.not(schemaErrors(data), 'valid', `${name}: the schema refuses it`);
  }
});

t.test('a mistyped informational field is refused naming the field', async (t) => {
  for (const key of ['createdAt', 'source', 'deviceTypeName', 'featureNames']) {
    const s: Record<string, unknown> = good();
    s[key] = 42;
    t.throws(() => parseSnapshot(JSON.stringify(s)), { code: 'E_SNAPSHOT_SCHEMA', message: new RegExp(`^snapshot: ${key} must be a string.*found 42`) }, `${key}: 42`);
    delete s[key];
    t.equal(codeOf(() => parseSnapshot(JSON.stringify(s))), 'no error', `${key} left out: taken`);
  }
});

t.test('what only uvirtio checks: sizes for the layout, indices within the ring, used not ahead', async (t) => {
  // These need arithmetic or comparisons across fields that JSON Schema (draft-07) cannot express;
  // the schema lets them through and docs/snapshot.md#json-schema says so.
  const cases: [string, (s: DeviceSnapshot) => void, string][] = [
    ['split size 12 (not a power of two)', (s) => { s.queues[0]!.size = 12; }, 'E_SNAPSHOT_QUEUE_SIZE'],
    ['used ahead of available', (s) => { s.queues[0]!.usedState = 65535; }, 'E_SNAPSHOT_USED_AHEAD'],
    ['packed index beyond the ring', (s) => { s.layout = 'packed'; s.queues[0]!.availState = 0x8000 | 9; s.queues[0]!.usedState = 0x8000; }, 'E_SNAPSHOT_INDEX'],
    // JSON Schema's uniqueItems catches a repeated queue only when every field repeats too.
    ['a queue index twice, other fields differing', (s) => { s.queues.push({ ...s.queues[0]!, vector: 2 }); }, 'E_SNAPSHOT_SCHEMA'],
  ];
  for (const [name, breakIt, want] of cases) {
    const s = good();
    breakIt(s);
    t.equal(codeOf(() => parseSnapshot(JSON.stringify(s))), want, `${name}: uvirtio refuses it`);
    t.equal(schemaErrors(s), 'valid', `${name}: structurally valid`);
  }
});

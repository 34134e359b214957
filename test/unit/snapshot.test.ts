import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Feature, bit, packPackedState } from '../../lib/spec/index.js';
import {
  checkSnapshotTarget, parseSnapshot, readSnapshotFile, writeSnapshotFile, type DeviceSnapshot, type SnapshotTarget,
} from '../../lib/virtio/snapshot/index.js';
import { codeOf } from '../support/codes.js';
import { tempDir } from '../support/tmp.js';

function good(): DeviceSnapshot {
  return {
    format: 'uvirtio-snapshot', version: 1, createdAt: '2026-11-23T00:00:00Z', source: 'sim:blk',
    deviceType: 2, deviceTypeName: 'blk', mechanism: 'ring-state', layout: 'split',
    features: '0x' + (bit(Feature.VERSION_1) | bit(Feature.RING_STATE)).toString(16), featureNames: '',
    queues: [{ index: 0, size: 8, desc: '0x100000000', driver: '0x100001000', device: '0x100002000', vector: 1, availState: 65534, usedState: 65530, inFlight: 4 }],
    config: '0008000000000000', deviceState: null,
  };
}
const target: SnapshotTarget = {
  address: 'sim:blk', deviceType: 2, numQueues: 1, offered: bit(Feature.VERSION_1) | bit(Feature.RING_STATE),
  queueMaxSize: () => 256, owns: (iova) => iova >= 0x1_0000_0000n && iova < 0x1_0001_0000n,
};

const mutate = (f: (s: DeviceSnapshot & Record<string, unknown>) => void): string => {
  const s = good() as DeviceSnapshot & Record<string, unknown>;
  f(s);
  return JSON.stringify(s);
};

t.test('a good snapshot round-trips through a file, written atomically', async (t) => {
  const dir = tempDir('uvirtio-snap-');
  const path = join(dir, 'state.json');
  writeSnapshotFile(path, good());
  t.same(readdirSync(dir), ['state.json'], 'no temp file left behind');
  const back = readSnapshotFile(path);
  t.equal(back.queues[0]!.availState, 65534);
  t.equal(back.featureNames, 'VERSION_1|RING_STATE', 'names recomputed, not trusted from the file');
  t.doesNotThrow(() => checkSnapshotTarget(back, target));
  t.equal(codeOf(() => writeSnapshotFile(join(dir, 'missing', 'x.json'), good())), 'E_SNAPSHOT_IO');
  t.same(JSON.parse(readFileSync(path, 'utf8')).queues[0].usedState, 65530, 'the earlier file is intact');
});

t.test('each fault of a file has its own code', async (t) => {
  const text = JSON.stringify(good());
  t.equal(codeOf(() => parseSnapshot(text.slice(0, text.length / 2))), 'E_SNAPSHOT_TRUNCATED');
  t.equal(codeOf(() => parseSnapshot('hello')), 'E_SNAPSHOT_NOT_JSON');
  t.equal(codeOf(() => parseSnapshot('')), 'E_SNAPSHOT_NOT_JSON');
  t.equal(codeOf(() => parseSnapshot('[]')), 'E_SNAPSHOT_SCHEMA');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.version = 2 as 1; }))), 'E_SNAPSHOT_VERSION');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.format = 'other' as 'uvirtio-snapshot'; }))), 'E_SNAPSHOT_SCHEMA');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.queues[0]!.desc = 'nowhere'; }))), 'E_SNAPSHOT_SCHEMA');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.queues[0]!.availState = 70000; }))), 'E_SNAPSHOT_SCHEMA');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.queues[0]!.size = 12; }))), 'E_SNAPSHOT_QUEUE_SIZE');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.queues[0]!.usedState = 65535; }))), 'E_SNAPSHOT_USED_AHEAD');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.queues[0]!.usedState = 65524; }))), 'E_SNAPSHOT_USED_AHEAD', '10 apart in an 8-entry ring');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.queues.push({ ...s.queues[0]! }); }))), 'E_SNAPSHOT_SCHEMA', 'duplicate queue');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.deviceState = { bytes: 'abc' }; }))), 'E_SNAPSHOT_SCHEMA', 'odd hex');
  t.equal(codeOf(() => parseSnapshot(mutate((s) => { s.deviceState = { bytes: '0102' }; }))), 'no error');
});

t.test('packed states: 15-bit index within the ring, used never ahead of available', async (t) => {
  const packed = (avail: number, used: number, size = 8): string => mutate((s) => {
    s.layout = 'packed';
    s.queues[0] = { ...s.queues[0]!, size, availState: avail, usedState: used };
  });
  t.equal(codeOf(() => parseSnapshot(packed(packPackedState(3, false), packPackedState(6, true)))), 'no error', 'avail wrapped, used not yet');
  t.equal(codeOf(() => parseSnapshot(packed(packPackedState(6, true), packPackedState(3, false)))), 'E_SNAPSHOT_USED_AHEAD');
  t.equal(codeOf(() => parseSnapshot(packed(packPackedState(9, true), packPackedState(0, true)))), 'E_SNAPSHOT_INDEX');
  t.equal(codeOf(() => parseSnapshot(packed(packPackedState(0, true), packPackedState(0, true), 3))), 'no error', 'any size for packed');
});

t.test('against a target: type, queue count, size, features, addresses', async (t) => {
  const snap = good();
  t.equal(codeOf(() => checkSnapshotTarget(snap, { ...target, deviceType: 1 })), 'E_SNAPSHOT_DEVICE_TYPE');
  t.equal(codeOf(() => checkSnapshotTarget({ ...snap, queues: [{ ...snap.queues[0]!, index: 1 }] }, target)), 'E_SNAPSHOT_QUEUE_COUNT');
  t.equal(codeOf(() => checkSnapshotTarget(snap, { ...target, queueMaxSize: () => 4 })), 'E_SNAPSHOT_QUEUE_SIZE');
  t.equal(codeOf(() => checkSnapshotTarget(snap, { ...target, offered: bit(Feature.VERSION_1) })), 'E_SNAPSHOT_FEATURES');
  t.equal(codeOf(() => checkSnapshotTarget({ ...snap, queues: [{ ...snap.queues[0]!, device: '0x5000' }] }, target)), 'E_SNAPSHOT_ADDRESS');
});

t.test('a file on disk that is not a snapshot is refused without touching anything', async (t) => {
  const dir = tempDir('uvirtio-snap-');
  const path = join(dir, 'junk.json');
  writeFileSync(path, '{"format":"uvirtio-snapshot","version":1,"queues":');
  t.equal(codeOf(() => readSnapshotFile(path)), 'E_SNAPSHOT_TRUNCATED');
  t.equal(codeOf(() => readSnapshotFile(join(dir, 'absent.json'))), 'E_SNAPSHOT_IO');
});

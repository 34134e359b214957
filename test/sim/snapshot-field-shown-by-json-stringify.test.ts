// Breaker 30: a snapshot field of the wrong kind is named in its E_SNAPSHOT_SCHEMA message with
// `JSON.stringify(value)` (validate.ts, field()). For a value JSON.stringify cannot render that
// throws instead: a deeply nested array — a 10 KB snapshot file with `"config": [[[…]]]` 5000 deep
// — is a RangeError ("Maximum call stack size exceeded"), so `uvirtio reinit --from FILE` prints
// "this is a bug in uvirtio" and exits 3 instead of E_SNAPSHOT_SCHEMA, exit 2; through the library,
// validateSnapshot() of an object with a cycle or a bigint field is a raw TypeError. README: a
// snapshot is untrusted input and each fault has its own code; a wrong-kind argument is "never a
// TypeError".
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSnapshot, readSnapshotFile, validateSnapshot } from '../../lib/virtio/snapshot/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { tempDir } from '../support/tmp.js';
import { stoppedBlkSnapshot } from '../support/blk-sim.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-deepsnap-rt-');
const work = tempDir('uvirtio-deepsnap-');

function code(f: () => unknown): string {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return e instanceof UvirtioError ? e.code : `${(e as Error).constructor?.name}: ${(e as Error).message}`;
  }
}


const snap = await stoppedBlkSnapshot();
const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
const text = JSON.stringify({ ...snap, config: '@@' }).replace('"@@"', deep(5000));

t.test('a deeply nested field: E_SNAPSHOT_SCHEMA from parseSnapshot and readSnapshotFile', async (t) => {
  t.ok(text.length < 16_000, `a small file (${text.length} bytes)`);
  t.equal(code(() => parseSnapshot(text)), 'E_SNAPSHOT_SCHEMA');
  writeFileSync(join(work, 'deep.json'), text);
  t.equal(code(() => readSnapshotFile(join(work, 'deep.json'))), 'E_SNAPSHOT_SCHEMA');
  const inDeviceState = JSON.stringify({ ...snap, deviceState: { bytes: '@@' } }).replace('"@@"', deep(5000));
  t.equal(code(() => parseSnapshot(inDeviceState)), 'E_SNAPSHOT_SCHEMA', 'deviceState.bytes too');
});

t.test('validateSnapshot of a cycle or a bigint: E_SNAPSHOT_SCHEMA, not a TypeError', async (t) => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  t.equal(code(() => validateSnapshot({ ...snap, config: cyclic })), 'E_SNAPSHOT_SCHEMA', 'a cycle');
  t.equal(code(() => validateSnapshot({ ...snap, queues: [{ ...snap.queues[0]!, availState: 5n }] })), 'E_SNAPSHOT_SCHEMA', 'a bigint');
});

t.test('uvirtio reinit --from a deeply nested file: exit 2, E_SNAPSHOT_SCHEMA, not "a bug in uvirtio"', async (t) => {
  const uv = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, cwd: work, env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  t.teardown(() => uv('detach', '--session', 'deep'));
  t.equal(uv('attach', 'sim:blk?mode=hold&latency=1', '--name', 'deep', '--traffic', '4').status, 0, 'attached');
  t.equal(uv('stop', '--session', 'deep').status, 0, 'stopped');
  const r = uv('reinit', '--session', 'deep', '--from', 'deep.json');
  t.equal(r.status, 2, r.stderr.trim());
  t.match(r.stderr, /^uvirtio: E_SNAPSHOT_SCHEMA: /);
  t.notMatch(r.stderr, /this is a bug in uvirtio/);
  t.ok(readFileSync(join(work, 'deep.json'), 'utf8') === text, 'the file is untouched');
});

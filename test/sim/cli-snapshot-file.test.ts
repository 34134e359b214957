// Snapshot files as the CLI writes and reads them (writeSnapshotFile / readSnapshotFile): a file is
// complete or absent, a killed writer's temp file is never taken for a snapshot and is removed by
// the next write once its writer is gone, and a failed write never clobbers what was there.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { readSnapshotFile, snapshotTempPath, writeSnapshotFile, type DeviceSnapshot } from '../../lib/virtio/snapshot/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { tempDir } from '../support/tmp.js';

const dir = tempDir('uvirtio-snapfile-');

function refusal(f: () => unknown): string {
  try {
    f();
    return 'no error';
  } catch (e) {
    return e instanceof UvirtioError ? `${e.code}: ${e.message}` : `foreign: ${String(e)}`;
  }
}

/** A real snapshot of a stopped reference device. */
async function takeSnapshot(): Promise<DeviceSnapshot> {
  const blk = await BlkDriver.open((await openTransport('sim:blk')).transport);
  await blk.write(0, new Uint8Array(512).fill(7));
  await blk.stop();
  const snap = blk.snapshot();
  await blk.close();
  return snap;
}

/**
 * A writer killed between its write and its rename: a child that creates the temp file exactly as
 * writeSnapshotFile names it (after its own pid), writes half a snapshot, and is SIGKILLed.
 */
async function killedWriter(target: string, text: string): Promise<string> {
  const snapshotJs = pathToFileURL(join(process.cwd(), 'dist', 'lib', 'virtio', 'snapshot', 'index.js')).href;
  const script = `
    import { writeFileSync } from 'node:fs';
    import { snapshotTempPath } from ${JSON.stringify(snapshotJs)};
    writeFileSync(snapshotTempPath(${JSON.stringify(target)}), ${JSON.stringify(text.slice(0, text.length >> 1))}, { flag: 'wx' });
    console.log('written');
    setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const tmp = snapshotTempPath(target, child.pid);
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  return tmp;
}

const snap = await takeSnapshot();
const text = JSON.stringify(snap, null, 2) + '\n';

t.test('a killed writer leaves no snapshot: the target is absent, its temp file is refused, the next write removes it', async (t) => {
  const target = join(dir, 'killed.json');
  const tmp = await killedWriter(target, text);
  t.ok(existsSync(tmp), `the killed writer left ${tmp}`);
  t.match(refusal(() => readSnapshotFile(target)), /^E_SNAPSHOT_IO: .*no such file/, 'the target is absent, not half-written');
  t.match(refusal(() => readSnapshotFile(tmp)), /^E_SNAPSHOT_IO: .*temporary file of an unfinished write/, 'the temp file is never read as a snapshot');
  t.notOk(readdirSync(dir).filter((f) => f.endsWith('.json')).includes(tmp.split('/').at(-1)!), 'a `*.json` glob does not see it');
  writeSnapshotFile(target, snap);
  t.same(readSnapshotFile(target).queues, snap.queues, 'the next write is complete');
  t.notOk(existsSync(tmp), 'and removed the dead writer\'s temp file');
});

t.test('the temp file of a writer still alive is left alone', async (t) => {
  const target = join(dir, 'alive.json');
  const other = snapshotTempPath(target, process.ppid); // the test runner: alive for sure
  writeFileSync(other, 'in progress');
  writeSnapshotFile(target, snap);
  t.ok(existsSync(other), 'not removed: its writer may still rename it');
  t.equal(readFileSync(target, 'utf8'), text, 'the target written all the same');
});

t.test('a failed write leaves the existing file as it was', async (t) => {
  const target = join(dir, 'kept.json');
  writeSnapshotFile(target, snap);
  const before = readFileSync(target, 'utf8');
  mkdirSync(snapshotTempPath(target)); // something that is not ours sits at this process's temp name
  t.match(refusal(() => writeSnapshotFile(target, { ...snap, source: 'changed' })), /^E_SNAPSHOT_IO: /, 'the write fails');
  t.equal(readFileSync(target, 'utf8'), before, 'the old snapshot is intact');
  t.ok(existsSync(snapshotTempPath(target)), 'and what sat at the temp name is not removed either');
});

t.test('what a write may replace: a snapshot or an empty file; never a non-snapshot, a directory, a symlink or a FIFO', async (t) => {
  const put = (name: string, content: string): string => {
    writeFileSync(join(dir, name), content);
    return join(dir, name);
  };
  const older = put('older.json', JSON.stringify({ ...snap, source: 'older' }, null, 2));
  t.equal(refusal(() => writeSnapshotFile(older, snap)), 'no error', 'an earlier snapshot is replaced');
  t.equal(readSnapshotFile(older).source, snap.source);
  const empty = put('mktemp.json', '');
  t.equal(refusal(() => writeSnapshotFile(empty, snap)), 'no error', 'an empty file (mktemp) is replaced');
  const notes = put('notes.json', '{"my": "notes"}');
  t.match(refusal(() => writeSnapshotFile(notes, snap)), /^E_SNAPSHOT_IO: .*not a uvirtio snapshot/);
  t.equal(readFileSync(notes, 'utf8'), '{"my": "notes"}', 'left as it was');
  t.match(refusal(() => writeSnapshotFile(dir, snap)), /^E_SNAPSHOT_IO: .*is a directory/);
  symlinkSync(older, join(dir, 'link.json'));
  t.match(refusal(() => writeSnapshotFile(join(dir, 'link.json'), snap)), /^E_SNAPSHOT_IO: .*symbolic link/);
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp') && f.includes(String(process.pid)) && !f.startsWith('.kept')), [], 'no temp file left by a refusal');
});

t.test('reading is bounded in size', async (t) => {
  const file = join(dir, 'sized.json');
  writeSnapshotFile(file, snap);
  t.match(refusal(() => readSnapshotFile(file, 100)), /^E_SNAPSHOT_IO: .*larger than the 100 a snapshot file may be/);
  t.equal(refusal(() => readSnapshotFile(file, text.length)), 'no error', 'a file of exactly the limit is read');
});

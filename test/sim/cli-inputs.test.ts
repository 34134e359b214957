// Bad input, as a careless user or a hostile file gives it to the real `uvirtio` binary. Every case
// must be refused the same way: exit 2; exactly one line on stderr, `uvirtio: E_CODE: message
// (hint: …)`, with the expected code and a hint; nothing on stdout; and nothing changed — no file
// of the working directory written or altered (FIFOs, symlink loops and a 1 GiB file included), no
// session file left behind, and the attached session's device still stopped where it was.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { call } from '../../cli/session/protocol.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(240_000); // some 75 runs of the binary, on a shared machine
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-inputs-rt-');
process.env.UVIRTIO_RUNTIME_DIR = runtime; // for call(): the session's state is asked over its socket, without a process
const work = tempDir('uvirtio-inputs-');
const DEVICE = 'sim:blk?mode=hold&latency=1&layout=packed';

function uv(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, cwd: work, env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Every entry under `dir` (not following symlinks, never opening a FIFO): kind, size, mtime, and a hash of small files. */
function fingerprint(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isFIFO() ? 'fifo' : st.isSymbolicLink() ? 'link' : 'other';
    const hash = st.isFile() && st.size < 1 << 20 ? createHash('sha1').update(readFileSync(path)).digest('hex') : '';
    out.push(`${name} ${kind} ${st.size} ${st.mtimeMs} ${hash}`);
    if (st.isDirectory()) out.push(...fingerprint(path).map((l) => `${name}/${l}`));
  }
  return out;
}

// ---- the fixture: session "in" holding the device, stopped mid-traffic, and its good snapshot ----
t.equal(uv('attach', DEVICE, '--name', 'in', '--traffic', '4').status, 0, 'attached');
t.equal(uv('stop', '--session', 'in').status, 0, 'stopped');
t.equal(uv('snapshot', '--session', 'in', '--out', 'good.json').status, 0, 'good snapshot taken');
const good = JSON.parse(readFileSync(join(work, 'good.json'), 'utf8')) as { layout: string; queues: Record<string, unknown>[] };
t.equal(good.layout, 'packed', 'the index cases below are written for a packed ring');
const q0 = good.queues[0]!;
const variant = (name: string, change: (s: Record<string, unknown>) => unknown): string => {
  const s = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
  writeFileSync(join(work, name), JSON.stringify(change(s) ?? s));
  return name;
};
const withQueue = (q: Record<string, unknown>) => (s: Record<string, unknown>): void => {
  s.queues = [{ ...q0, ...q }];
};

mkdirSync(join(work, 'adir'));
writeFileSync(join(work, 'notes.txt'), 'my notes, not a snapshot\n');
writeFileSync(join(work, 'empty.json'), '');
writeFileSync(join(work, 'cut.json'), readFileSync(join(work, 'good.json'), 'utf8').slice(0, 120));
writeFileSync(join(work, 'garbage.json'), '\x1b[31mgarbage\x00\n\xff\xfe');
writeFileSync(join(work, 'huge.json'), '');
truncateSync(join(work, 'huge.json'), 1 << 30); // sparse: 1 GiB that costs nothing
symlinkSync('loop', join(work, 'loop'));
spawnSync('mkfifo', [join(work, 'fifo')]);
writeFileSync(join(work, '.good.json.99999999.tmp'), readFileSync(join(work, 'good.json'), 'utf8').slice(0, 200));
variant('array.json', () => [1, 2, 3]);
variant('noqueues.json', (s) => ({ format: s.format, version: s.version }));
variant('badhex.json', (s) => void (s.features = '0xZZ'));
variant('version2.json', (s) => void (s.version = 2));
variant('nettype.json', (s) => void (s.deviceType = 1));
variant('queue7.json', (s) => void (s.queues = [q0, { ...q0, index: 7 }]));
variant('bigqueue.json', withQueue({ size: 1024 }));
variant('index.json', withQueue({ availState: 0x8000 | (q0.size as number) }));
variant('usedahead.json', withQueue({ availState: 0x8000 | 3, usedState: 0x8000 | 5 }));
variant('inflight.json', withQueue({ inFlight: -1 }));

type Status = { phase: string; mechanism: string; requests: { submitted: number } };
const baseline = JSON.parse(uv('status', '--session', 'in', '--json').stdout) as Status;
t.match(baseline, { phase: 'stopped', mechanism: 'ring-state' });
// After the fixture: tap ends a root test that has a teardown as soon as it is idle (an await would do).
t.teardown(() => void uv('detach', '--session', 'in'));

const S = ['--session', 'in'];
const CASES: [string[], string][] = [
  // commands, options and numbers
  [['frobnicate'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--frobnicate'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--devic', 'sim:blk'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--cycles', '0'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--cycles', '-1'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--cycles', '1e9'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--cycles', 'abc'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--cycles'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--inflight', '99999'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--seed', '1.5'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--timeout', '0'], 'E_INVALID_ARGUMENT'],
  [['attach', 'sim:blk', '--traffic', '999'], 'E_INVALID_ARGUMENT'],
  [['info'], 'E_INVALID_ARGUMENT'],
  [['info', 'sim:blk', 'extra'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--mechanism', 'teleport'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--layout', 'diagonal'], 'E_INVALID_ARGUMENT'],
  [['stop', ...S, '--mechanism', 'teleport'], 'E_INVALID_ARGUMENT'],
  [['snapshot', ...S], 'E_INVALID_ARGUMENT'],
  // device addresses
  [['info', 'sim:foo'], 'E_BAD_ADDRESS'],
  [['info', 'sim:blk?bogus=1'], 'E_BAD_ADDRESS'],
  [['info', 'sim:blk?layout=diagonal'], 'E_BAD_ADDRESS'],
  [['info', 'sim:blk?latency=-5'], 'E_BAD_ADDRESS'],
  [['info', 'vfio:zzzz'], 'E_BAD_ADDRESS'],
  [['info', 'vhost-user:'], 'E_BAD_ADDRESS'],
  [['info', `vhost-user:${join(work, 'notes.txt')}`], 'E_VHOST_NOT_SOCKET'],
  [['info', `vhost-user:${join(work, 'vhost.sock')}?bogus=1`], 'E_BAD_ADDRESS'],
  [['attach', 'sim:blk?bogus=1', '--name', 'bogus'], 'E_BAD_ADDRESS'],
  [['attach', 'sim:rng', '--name', 'rng'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--device', 'sim:rng'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--device', 'sim:blk', '--to', 'sim:net'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--device', 'sim:blk', '--workload', 'net'], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--snapshot-dir', join(work, 'missing')], 'E_INVALID_ARGUMENT'],
  [['rehearse', '--snapshot-dir', join(work, 'notes.txt')], 'E_INVALID_ARGUMENT'],
  // sessions
  [['attach', 'sim:blk', '--name', '../evil'], 'E_INVALID_ARGUMENT'],
  [['attach', 'sim:blk', '--name', 'a/b'], 'E_INVALID_ARGUMENT'],
  [['stop', '--session', '../in'], 'E_INVALID_ARGUMENT'],
  [['status', '--session', '..'], 'E_INVALID_ARGUMENT'],
  [['stop', '--session', 'nosuch'], 'E_NO_SESSION'],
  [['attach', 'sim:net', '--name', 'in'], 'E_SESSION_EXISTS'],
  [['attach', DEVICE, '--name', 'in2'], 'E_SESSION_EXISTS'],
  [['detach', ...S, '--verify'], 'E_BAD_STATE'],
  // snapshot --out
  [['snapshot', ...S, '--out', 'adir'], 'E_SNAPSHOT_IO'],
  [['snapshot', ...S, '--out', join(work, 'missing', 'x.json')], 'E_SNAPSHOT_IO'],
  [['snapshot', ...S, '--out', 'missing/relative.json'], 'E_SNAPSHOT_IO'],
  [['snapshot', ...S, '--out', '/sys/uvirtio-test.json'], 'E_SNAPSHOT_IO'], // a directory nobody may write, root included
  [['snapshot', ...S, '--out', 'notes.txt'], 'E_SNAPSHOT_IO'],
  [['snapshot', ...S, '--out', 'fifo'], 'E_SNAPSHOT_IO'],
  [['snapshot', ...S, '--out', 'loop'], 'E_SNAPSHOT_IO'],
  // reinit --from: files
  [['reinit', ...S, '--from', 'absent.json'], 'E_SNAPSHOT_IO'],
  [['reinit', ...S, '--from', 'adir'], 'E_SNAPSHOT_IO'],
  [['reinit', ...S, '--from', 'empty.json'], 'E_SNAPSHOT_TRUNCATED'],
  [['reinit', ...S, '--from', 'cut.json'], 'E_SNAPSHOT_TRUNCATED'],
  [['reinit', ...S, '--from', 'garbage.json'], 'E_SNAPSHOT_NOT_JSON'],
  [['reinit', ...S, '--from', 'huge.json'], 'E_SNAPSHOT_IO'],
  [['reinit', ...S, '--from', '/dev/zero'], 'E_SNAPSHOT_IO'],
  [['reinit', ...S, '--from', 'loop'], 'E_SNAPSHOT_IO'],
  [['reinit', ...S, '--from', 'fifo'], 'E_SNAPSHOT_IO'],
  [['reinit', ...S, '--from', '.good.json.99999999.tmp'], 'E_SNAPSHOT_IO'],
  // reinit --from: contents
  [['reinit', ...S, '--from', 'array.json'], 'E_SNAPSHOT_SCHEMA'],
  [['reinit', ...S, '--from', 'noqueues.json'], 'E_SNAPSHOT_SCHEMA'],
  [['reinit', ...S, '--from', 'badhex.json'], 'E_SNAPSHOT_SCHEMA'],
  [['reinit', ...S, '--from', 'inflight.json'], 'E_SNAPSHOT_SCHEMA'],
  [['reinit', ...S, '--from', 'version2.json'], 'E_SNAPSHOT_VERSION'],
  [['reinit', ...S, '--from', 'nettype.json'], 'E_SNAPSHOT_DEVICE_TYPE'],
  [['reinit', ...S, '--from', 'queue7.json'], 'E_SNAPSHOT_QUEUE_COUNT'],
  [['reinit', ...S, '--from', 'bigqueue.json'], 'E_SNAPSHOT_QUEUE_SIZE'],
  [['reinit', ...S, '--from', 'index.json'], 'E_SNAPSHOT_INDEX'],
  [['reinit', ...S, '--from', 'usedahead.json'], 'E_SNAPSHOT_USED_AHEAD'],
  [['reinit', ...S, '--from', 'good.json', '--to', 'sim:foo'], 'E_BAD_ADDRESS'],
  [['reinit', ...S, '--from', 'good.json', '--to', 'sim:net'], 'E_SNAPSHOT_DEVICE_TYPE'],
];

t.ok(CASES.length >= 30, `${CASES.length} cases`);

for (const [args, code] of CASES) {
  t.test(`uvirtio ${args.join(' ')} → ${code}`, async (t) => {
    const files = fingerprint(work);
    const sessions = readdirSync(runtime).sort();
    const r = uv(...args);
    t.equal(r.status, 2, `exit 2 (got ${r.status ?? r.signal}; stderr ${r.stderr})`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    t.equal(lines.length, 1, 'exactly one line on stderr');
    const m = /^uvirtio: (E_[A-Z_]+): (.+) \(hint: (.+)\)$/.exec(lines[0] ?? '');
    t.ok(m, `the line has the format: ${lines[0]}`);
    t.equal(m?.[1], code, 'the code');
    t.ok((m?.[3] ?? '').trim().length > 5, 'a hint');
    t.equal(r.stdout, '', 'nothing on stdout');
    t.same(fingerprint(work), files, 'no file written or changed');
    t.same(readdirSync(runtime).sort(), sessions, 'no session file left behind');
    const now = await call('in', { cmd: 'status' }, 5000, null) as Status;
    t.match(now, { phase: baseline.phase, mechanism: baseline.mechanism, driving: 'sim:blk', requests: { submitted: baseline.requests.submitted } }, 'the device is as it was');
  });
}

t.test('--json: the same refusal as one object on stdout, nothing on stderr', async (t) => {
  for (const args of [['rehearse', '--cycles', '0', '--json'], ['reinit', ...S, '--from', 'garbage.json', '--json'], ['info', 'sim:foo', '--json']]) {
    const r = uv(...args);
    t.equal(r.status, 2, args.join(' '));
    t.equal(r.stderr, '', 'stderr empty');
    t.match(JSON.parse(r.stdout), { ok: false, error: { code: /^E_/, message: String, hint: String } });
  }
});

t.test('after all that the session still works: reinit from the good file, traffic, a clean verdict', async (t) => {
  t.equal(uv('reinit', ...S, '--from', 'good.json').status, 0);
  await new Promise((r) => setTimeout(r, 300));
  const d = uv('detach', ...S, '--verify', '--json');
  t.equal(d.status, 0, d.stderr);
  t.match(JSON.parse(d.stdout), { verdict: { lost: 0, duplicated: 0, corrupted: 0 } });
});

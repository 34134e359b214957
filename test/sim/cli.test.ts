// The real `uvirtio` binary, spawned as a user's shell script would: JSON on stdout, one-line
// errors with codes, documented exit statuses.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { parseSnapshot } from '../../lib/virtio/snapshot/index.js';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

const bin = join(process.cwd(), 'bin', 'uvirtio.js');
/** cycle-2.json before cycle-10.json; any other name after them. */
const byCycle = (a: string, b: string): number => (Number(/^cycle-(\d+)\.json$/.exec(a)?.[1] ?? Infinity) - Number(/^cycle-(\d+)\.json$/.exec(b)?.[1] ?? Infinity)) || a.localeCompare(b);
function run(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('rehearse on the reference device: one JSON verdict, exit 0', async (t) => {
  const dir = tempDir('uvirtio-cli-');
  const r = run('rehearse', '--cycles', '3', '--inflight', '8', '--seed', '5', '--snapshot-dir', dir, '--json');
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.match(out, { ok: true, device: 'sim:blk', target: 'sim:blk', mechanism: 'ring-state', cycles: 3, requests: { lost: 0, duplicated: 0, corrupted: 0 } });
  t.equal(out.requests.submitted, out.requests.completed);
  t.ok(out.pause_ms.median > 0 && out.pause_ms.max >= out.pause_ms.p99, 'pause statistics present');
  t.same(readdirSync(dir).sort(), ['cycle-1.json', 'cycle-2.json', 'cycle-3.json'], 'each snapshot file kept, no temp files');
});

for (const layout of ['split', 'packed']) {
  for (const [device, mechanism] of [['sim:blk?state=ring-state&latency=1', 'ring-state'], ['sim:blk?state=ring-state&mode=hold&latency=1', 'ring-state'], ['sim:blk?state=suspend&latency=1', 'suspend'], ['sim:net?state=ring-state&mode=hold', 'ring-state'], ['sim:net?state=suspend', 'suspend']] as const) {
    t.test(`rehearse ${device} --layout ${layout} --to a second device: exactly once`, async (t) => {
      const r = run('rehearse', '--device', device, '--to', device, '--layout', layout, '--cycles', '4', '--inflight', '12', '--json');
      t.equal(r.status, 0, r.stderr);
      t.match(JSON.parse(r.stdout), { ok: true, layout, mechanism, cycles: 4, requests: { lost: 0, duplicated: 0, corrupted: 0 } });
    });
  }
}

t.test('info --json names features and mechanisms', async (t) => {
  const r = run('info', 'sim:net?state=suspend', '--json');
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.equal(out.type, 'net');
  t.same(out.mechanisms, ['suspend', 'quiesce']);
  t.match(out.offeredNames, /MAC/);
  t.equal(out.config.mac, '52:54:00:12:34:56');
});

t.test('bad input: one line with a code and a hint, exit 2, no stack trace', async (t) => {
  for (const args of [['info', 'sim:gpu'], ['info', 'vfio:00:02'], ['rehearse', '--device', 'sim:blk?mode=sideways'], ['rehearse', '--inflight', 'many']]) {
    const r = run(...args);
    t.equal(r.status, 2, `${args.join(' ')} → exit 2`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const r = run('rehearse', '--device', 'sim:blk?mode=sideways', '--json');
  t.match(JSON.parse(r.stdout), { ok: false, error: { code: 'E_BAD_ADDRESS' } });
});

t.test('a mechanism the device lacks is a device error (exit 3) naming it', async (t) => {
  const r = run('rehearse', '--device', 'sim:blk?state=none', '--mechanism', 'ring-state');
  t.equal(r.status, 3);
  t.match(r.stderr, /E_STATE_UNSUPPORTED.*ring-state/);
});

t.test('Ctrl-C during a rehearsal: exit 130, and every snapshot file is complete', async (t) => {
  const dir = tempDir('uvirtio-cli-int-');
  const child = spawn(process.execPath, [bin, 'rehearse', '--cycles', '100000', '--device', 'sim:blk?latency=1', '--snapshot-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (out.includes('cycle 3:')) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });
  child.kill('SIGINT');
  const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.equal(status, 130, 'interrupted');
  // How many cycles ran before the signal is up to timing: one assertion per fact, not one per
  // file, so the count is the same every run.
  const files = readdirSync(dir);
  t.ok(files.length >= 3, `${files.length} snapshot files`);
  t.same([...files].sort(byCycle), files.map((_, i) => `cycle-${i + 1}.json`), 'one file per cycle that ran, cycle-1.json on, no temp file');
  const broken: string[] = [];
  for (const f of files) {
    try {
      parseSnapshot(readFileSync(join(dir, f), 'utf8'));
    } catch (e) {
      broken.push(`${f}: ${String((e as Error)?.message ?? e)}`);
    }
  }
  t.same(broken, [], `every snapshot file is complete (${files.length - broken.length} of ${files.length} parsed)`);
});

t.test('--help of the program and of every command documents the exit statuses', async (t) => {
  const commands = ['list', 'bind', 'unbind', 'info', 'rehearse', 'attach', 'stop', 'vq-state', 'snapshot', 'reinit', 'resume', 'status', 'detach'];
  for (const args of [['--help'], ...commands.map((c) => [c, '--help'])]) {
    const r = run(...args);
    t.equal(r.status, 0, `${args.join(' ')}: exit 0`);
    for (const status of ['0', '1', '2', '3', '130', '143']) t.match(r.stdout, new RegExp(`^ +${status} +\\S`, 'm'), `${args.join(' ')} documents exit status ${status}`);
  }
});

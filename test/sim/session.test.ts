// Sessions across separate invocations of the real binary: attach holds the device in an agent;
// stop, vq-state, snapshot, reinit (same device and --to another), status and detach talk to it.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-sessions-');
const work = tempDir('uvirtio-session-files-');

function uv(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000, cwd: work, env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: (): Record<string, unknown> => JSON.parse(r.stdout) as Record<string, unknown> };
}

t.teardown(() => {
  for (const s of ['mig', 'net1', 'sus', 'stall']) uv('detach', '--session', s);
});

type Status = { phase: string; requests: { submitted: number; completed: number; inFlight: number } };
const status = (name: string): Status => uv('status', '--session', name, '--json').json() as Status;

t.test('attach → stop → vq-state → snapshot → reinit --to → detach --verify, with traffic running', async (t) => {
  const a = uv('attach', 'sim:blk?mode=hold&latency=1', '--name', 'mig', '--traffic', '8', '--json');
  t.equal(a.status, 0, a.stderr);
  t.match(a.json(), { session: 'mig', device: 'sim:blk?mode=hold&latency=1' });
  t.equal(uv('attach', 'sim:blk?mode=hold&latency=1', '--name', 'other').status, 2, 'a second attach of the same device is refused');
  t.match(uv('attach', 'sim:blk?mode=hold&latency=1', '--name', 'other').stderr, /E_SESSION_EXISTS/);
  t.equal(uv('vq-state', '--session', 'mig').status, 2, 'no state from a running device');
  const stop = uv('stop', '--session', 'mig', '--json');
  t.equal(stop.status, 0, stop.stderr);
  t.match(stop.json(), { phase: 'stopped', mechanism: 'ring-state' });
  const vq = uv('vq-state', '--session', 'mig', '--json').json() as { queues: { availState: number; usedState: number }[] };
  t.equal(vq.queues.length, 1);
  const snap = uv('snapshot', '--session', 'mig', '--out', 'state.json', '--json');
  t.equal(snap.status, 0, snap.stderr);
  const file = JSON.parse(readFileSync(join(work, 'state.json'), 'utf8')) as { queues: { availState: number }[]; mechanism: string };
  t.equal(file.queues[0]!.availState, vq.queues[0]!.availState, 'the file holds the state vq-state showed');
  const re = uv('reinit', '--session', 'mig', '--from', 'state.json', '--to', 'sim:blk?mode=hold&latency=1&capacity=2048', '--json');
  t.equal(re.status, 0, re.stderr);
  t.match(re.json(), { phase: 'live', driving: 'sim:blk' });
  await new Promise((r) => setTimeout(r, 300)); // traffic goes on on the destination
  const st = uv('status', '--session', 'mig', '--json').json() as { requests: { completed: number } };
  t.ok(st.requests.completed > 0);
  const d = uv('detach', '--session', 'mig', '--verify', '--json');
  t.equal(d.status, 0, d.stderr);
  t.match(d.json(), { verdict: { lost: 0, duplicated: 0, corrupted: 0 } });
  t.equal(uv('status', '--session', 'mig').status, 2, 'the session is gone');
});

t.test('bad input: missing session, corrupted snapshot, snapshot of another device type', async (t) => {
  const none = uv('stop', '--session', 'nope');
  t.equal(none.status, 2);
  t.match(none.stderr, /E_NO_SESSION/);
  t.equal(uv('attach', 'sim:net', '--name', 'net1').status, 0);
  t.equal(uv('stop', '--session', 'net1').status, 0);
  writeFileSync(join(work, 'cut.json'), '{"format":"uvirtio-snapshot","version":1,"queues":[');
  const cut = uv('reinit', '--session', 'net1', '--from', 'cut.json');
  t.equal(cut.status, 2);
  t.match(cut.stderr, /E_SNAPSHOT_TRUNCATED/);
  const wrongType = uv('reinit', '--session', 'net1', '--from', 'state.json');
  t.equal(wrongType.status, 2, 'a blk snapshot onto a net device');
  t.match(wrongType.stderr, /E_SNAPSHOT_DEVICE_TYPE/);
  t.match(uv('status', '--session', 'net1', '--json').json(), { phase: 'stopped' }, 'the device was left as it was');
  t.equal(uv('resume', '--session', 'net1').status, 3, 'STOP is one-way: resume refused (a device error, exit 3)');
  t.equal(uv('detach', '--session', 'net1').status, 0);
});

t.test('a stale socket (agent gone) is cleaned up and reported', async (t) => {
  writeFileSync(join(runtime, 'ghost.sock'), '');
  const r = uv('status', '--session', 'ghost');
  t.equal(r.status, 2);
  t.match(r.stderr, /E_NO_SESSION/);
  t.notOk(existsSync(join(runtime, 'ghost.sock')), 'the stale socket was removed');
});

t.test('stop --mechanism suspend → resume: the traffic moves again, and detach --verify gives a clean verdict', async (t) => {
  // The exact failing input of issue 10: resume used to reach the device, not the driver, leaving
  // its request queues paused — status said live, the counters froze, detach --verify never returned.
  t.equal(uv('attach', 'sim:blk?state=suspend&latency=1', '--name', 'sus', '--traffic', '8').status, 0);
  const stop = uv('stop', '--session', 'sus', '--mechanism', 'suspend', '--json');
  t.equal(stop.status, 0, stop.stderr);
  t.match(stop.json(), { phase: 'stopped', mechanism: 'suspend' });
  const stopped = status('sus').requests.completed;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(status('sus').requests.completed, stopped, 'nothing completes while suspended');
  const resume = uv('resume', '--session', 'sus', '--json');
  t.equal(resume.status, 0, resume.stderr);
  t.match(resume.json(), { phase: 'live', mechanism: null });
  const samples = [status('sus').requests.completed];
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 300));
    samples.push(status('sus').requests.completed);
  }
  t.ok(samples.every((n, i) => i === 0 || n > samples[i - 1]!), `the counters move after resume: ${stopped} at the stop, then ${samples.join(', ')}`);
  const d = uv('detach', '--session', 'sus', '--verify', '--json');
  t.equal(d.status, 0, `detach --verify returned: ${d.stderr}`);
  const r = d.json() as { verdict: unknown; requests: { submitted: number; completed: number; inFlight: number } };
  t.same(r.verdict, { lost: 0, duplicated: 0, corrupted: 0 }, 'a clean verdict');
  t.equal(r.requests.completed, r.requests.submitted, `every request completed (${r.requests.submitted})`);
  t.equal(r.requests.inFlight, 0);
});

t.test('detach --verify on a device that never completes ends by its bound (exit 3) and still ends the session', async (t) => {
  t.equal(uv('attach', 'sim:blk?completion=manual', '--name', 'stall', '--traffic', '4').status, 0);
  const d = uv('detach', '--session', 'stall', '--verify', '--timeout', '1000');
  t.equal(d.status, 3, 'a device error, not a hang');
  t.match(d.stderr, /^uvirtio: E_DEVICE_UNRESPONSIVE: .*no request completed for 1000 ms \(4 in flight\).*the session was ended/);
  t.equal(uv('status', '--session', 'stall').status, 2, 'the session is gone');
  t.notOk(existsSync(join(runtime, 'stall.sock')), 'its socket removed');
});

t.test('detach --verify on a stopped device is refused (exit 2) and the session stays', async (t) => {
  t.equal(uv('attach', 'sim:blk?latency=1', '--name', 'sus', '--traffic', '2').status, 0);
  t.equal(uv('stop', '--session', 'sus').status, 0);
  const d = uv('detach', '--session', 'sus', '--verify');
  t.equal(d.status, 2);
  t.match(d.stderr, /E_BAD_STATE: cannot verify/);
  t.match(status('sus'), { phase: 'stopped' }, 'still attached, still stopped');
  t.equal(uv('detach', '--session', 'sus').status, 0);
});

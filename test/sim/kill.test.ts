// Kill tests on the reference device: SIGINT and SIGKILL at seeded random moments of `stop`,
// `snapshot`, `reinit` — the command, and the session agent under it — and of `rehearse`.
// Afterwards, every time:
//   - the snapshot file is complete (reads and validates) or absent; a killed writer's temp file
//     is refused as a snapshot, and swept later;
//   - the device opens and works: the session answers and ends with a clean verdict; when its
//     agent was killed, its socket and lock are cleaned and a new attach of the same device works
//     to a clean verdict; a new rehearsal on the device succeeds.
// The seed is printed (UVIRTIO_KILL_SEED picks another); each trial prints its point and outcome.
import t, { type Test as Tap } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { randomInt, seededRandom } from '../../cli/rehearsal/random.js';
import { Background, sleep, until, uvSync } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(600_000);
const seed = Number(process.env.UVIRTIO_KILL_SEED ?? 7);
const rng = seededRandom(seed);
t.comment(`seed ${seed} (UVIRTIO_KILL_SEED)`);
const runtime = tempDir('uvirtio-kill-rt-');
const work = tempDir('uvirtio-kill-');
const env = { UVIRTIO_RUNTIME_DIR: runtime };
const uv = (...args: string[]) => uvSync(env, work, args);
const KILLED = { SIGINT: 130, SIGKILL: 137 } as const;
type Kill = keyof typeof KILLED;
const TEMP = /^\..+\.\d+\.tmp$/;

/**
 * Every file of `snapshotNames` in `dir` is complete (reads and validates); a temp file is left
 * only by a killed writer (SIGKILL) and no reader takes it for a snapshot. One assertion per kind,
 * whatever the number of files (that depends on where each kill landed, and the files of earlier
 * trials are in `dir` too), so the tier's count is the same every run.
 */
function checkFiles(t: Tap, dir: string, sig: Kill, snapshotNames: RegExp): string {
  const complete: string[] = [];
  const temps: string[] = [];
  const broken: string[] = [];
  const takenTemps: string[] = [];
  for (const f of readdirSync(dir)) {
    if (TEMP.test(f)) {
      temps.push(f);
      try {
        readSnapshotFile(join(dir, f));
        takenTemps.push(`${f}: read as a snapshot`);
      } catch (e) {
        const { code, message } = e as { code?: string; message?: string };
        if (code !== 'E_SNAPSHOT_IO' || !/temporary file of an unfinished write/.test(message ?? '')) takenTemps.push(`${f}: ${code} ${message}`);
      }
    } else if (snapshotNames.test(f)) {
      try {
        readSnapshotFile(join(dir, f));
        complete.push(f);
      } catch (e) {
        broken.push(`${f}: ${String((e as Error)?.message ?? e)}`);
      }
    }
  }
  t.same(broken, [], `every snapshot file is complete (${complete.length} read and validated)`);
  t.same(sig === 'SIGKILL' ? [] : temps, [], `a temp file is left only by a killed writer (${temps.length} after ${sig})`);
  t.same(takenTemps, [], 'no temp file is taken for a snapshot (each is refused with E_SNAPSHOT_IO, "temporary file of an unfinished write")');
  return `${complete.length} complete file(s), ${temps.length} temp file(s)`;
}

/** The file reads and validates as a snapshot. */
function readable(path: string): boolean {
  try {
    readSnapshotFile(path);
    return true;
  } catch {
    return false;
  }
}

function status(session: string): { phase: string; pid: number } | null {
  const r = uv('status', '--session', session, '--json');
  return r.status === 0 ? r.json() as { phase: string; pid: number } : null;
}

/**
 * Brings a session to `phase` with ordinary commands (a stopped one comes back through snapshot +
 * reinit). One assertion whatever the steps: which are needed depends on where a kill landed.
 */
function bring(t: Tap, session: string, phase: 'live' | 'stopped'): void {
  const now = status(session)?.phase;
  const steps: string[] = [];
  const failed: string[] = [];
  const step = (...args: string[]): boolean => {
    const r = uv(...args);
    steps.push(args[0]!);
    if (r.status !== 0) failed.push(`${args[0]}: exit ${r.status} ${r.stderr.trim()}`);
    return r.status === 0;
  };
  if (now !== phase) {
    if (phase === 'stopped') step('stop', '--session', session);
    else if (step('snapshot', '--session', session, '--out', `${session}-base.json`)) step('reinit', '--session', session, '--from', `${session}-base.json`);
  }
  t.same(failed, [], `${session} brought to ${phase} (from ${now ?? 'no answer'}: ${steps.join(' + ') || 'nothing to do'})`);
}

/** The command of a trial, its precondition, and the snapshot file it may write. */
function prepare(t: Tap, session: string, cmd: string, i: number): { args: string[]; out?: string } {
  if (cmd === 'stop') {
    bring(t, session, 'live');
    return { args: ['stop', '--session', session] };
  }
  bring(t, session, 'stopped');
  if (cmd === 'snapshot') return { args: ['snapshot', '--session', session, '--out', `out-${i}.json`], out: `out-${i}.json` };
  t.equal(uv('snapshot', '--session', session, '--out', `from-${i}.json`).status, 0, 'the snapshot to reinit from');
  return { args: ['reinit', '--session', session, '--from', `from-${i}.json`] };
}

async function verifyClean(t: Tap, session: string): Promise<void> {
  bring(t, session, 'live');
  await sleep(300);
  const d = uv('detach', '--session', session, '--verify', '--json');
  t.equal(d.status, 0, `detach --verify: ${d.stderr}`);
  t.match(d.json(), { verdict: { lost: 0, duplicated: 0, corrupted: 0 } }, 'every request exactly once, data intact');
}

const TRIALS: [string, Kill][] = [];
for (const cmd of ['stop', 'snapshot', 'reinit']) for (const sig of ['SIGINT', 'SIGKILL'] as const) TRIALS.push([cmd, sig], [cmd, sig]);

t.test('the command killed: the session answers, and ends with a clean verdict', async (t) => {
  const S = 'k';
  t.equal(uv('attach', 'sim:blk?mode=hold&latency=1', '--name', S, '--traffic', '8').status, 0, 'attached');
  t.teardown(() => void uv('detach', '--session', S));
  for (const [i, [cmd, sig]] of TRIALS.entries()) {
    const { args, out } = prepare(t, S, cmd, i);
    const at = randomInt(rng, 0, 450);
    const b = new Background(env, work, args);
    await sleep(at);
    const r = await b.signal(sig);
    // A signal that lands while the command is already exiting (its work done, its line printed)
    // cannot change its status: the process may be gone by the time kill(2) reaches it.
    const exiting = r.sent && r.status === 0 && r.stdout.trim() !== '' && r.stderr === '';
    t.ok(r.status === (r.sent ? KILLED[sig] : 0) || exiting,
      `${cmd} ${sig} at ${at} ms: ${!r.sent ? 'it had finished' : exiting ? 'it was exiting, done (0)' : `killed (${r.status})`}`);
    if (out) t.ok(!existsSync(join(work, out)) || readable(join(work, out)), `${out}: ${existsSync(join(work, out)) ? 'complete' : 'absent'}`);
    const files = checkFiles(t, work, sig, /^(out|from|k-base)-?\d*\.json$/);
    const st = status(S);
    t.match(st, { phase: /^(live|stopped)$/ }, `the session answers: ${st?.phase}`);
    t.comment(`trial ${i}: ${cmd} ${sig} at ${at} ms → ${r.sent ? r.status : 'finished first'}${exiting ? ' (exiting as the signal came)' : ''}; session ${st?.phase}; ${files}`);
  }
  await verifyClean(t, S);
});

t.test('the agent killed: stale socket and lock cleaned, the same device attached again works', async (t) => {
  const DEVICE = 'sim:blk?mode=hold&latency=1&capacity=4096';
  for (const [i, [cmd, sig]] of TRIALS.filter((_, j) => j % 2 === 0).entries()) {
    const S = `a${i}`;
    const a = uv('attach', DEVICE, '--name', S, '--traffic', '8');
    t.equal(a.status, 0, `attach ${S}: ${a.stderr}`);
    const agent = status(S)!.pid;
    const { args, out } = prepare(t, S, cmd, 100 + i);
    const at = randomInt(rng, 0, 450);
    const b = new Background(env, work, args);
    await sleep(at);
    process.kill(agent, sig);
    const r = await b.exited;
    t.ok([0, 2].includes(r.status), `${cmd} ended (${r.status}): done before the kill, or E_NO_SESSION ${r.stderr.trim()}`);
    t.ok(await until(() => { try { process.kill(agent, 0); return false; } catch { return true; } }, 5000), `agent ${agent} is gone`);
    if (out) t.ok(!existsSync(join(work, out)) || readable(join(work, out)), `${out}: ${existsSync(join(work, out)) ? 'complete' : 'absent'}`);
    const files = checkFiles(t, work, 'SIGKILL', /^(out|from|a\d+-base)-?\d*\.json$/); // the CLI may have been writing when its agent died: any kill
    if (sig === 'SIGINT') {
      t.notOk(existsSync(join(runtime, `${S}.sock`)), 'the agent removed its socket on SIGINT');
      t.same(readdirSync(runtime).filter((f) => f.endsWith('.lock')), [], 'and its lock');
    }
    const all = uv('status', '--json');
    t.equal(all.status, 0);
    t.same((JSON.parse(all.stdout) as unknown[]).length, 0, 'no session listed: a stale socket was removed');
    t.notOk(existsSync(join(runtime, `${S}.sock`)), 'no socket left');
    const again = uv('attach', DEVICE, '--name', `${S}b`, '--traffic', '8');
    t.equal(again.status, 0, `the same device attached again (a stale lock is taken over): ${again.stderr}`);
    bring(t, `${S}b`, 'stopped');
    await verifyClean(t, `${S}b`);
    t.comment(`agent trial ${i}: ${cmd}, agent ${sig} at ${at} ms → command ${r.status}; ${files}`);
  }
});

t.test('rehearse killed: its snapshot files complete or absent, a new rehearsal succeeds and sweeps the leftovers', async (t) => {
  for (const sig of ['SIGINT', 'SIGKILL', 'SIGINT', 'SIGKILL'] as const) {
    const dir = tempDir('uvirtio-kill-rehearse-');
    const args = ['rehearse', '--device', 'sim:blk?latency=1', '--snapshot-dir', dir];
    const at = randomInt(rng, 300, 2500);
    const b = new Background(env, work, [...args, '--cycles', '100000']);
    await sleep(at);
    const r = await b.signal(sig);
    t.ok(r.sent, `${sig} at ${at} ms reached it`);
    t.equal(r.status, KILLED[sig], `status ${KILLED[sig]}`);
    const files = checkFiles(t, dir, sig, /^cycle-\d+\.json$/);
    const again = uvSync(env, work, [...args, '--cycles', '2', '--json']);
    t.equal(again.status, 0, `a new rehearsal: ${again.stderr}`);
    t.match(again.json(), { ok: true, cycles: 2 });
    t.same(readdirSync(dir).filter((f) => TEMP.test(f)), [], 'no temp file left');
    t.comment(`rehearse ${sig} at ${at} ms → ${r.status}; ${files}`);
  }
});

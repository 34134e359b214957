// Kill tests against real qemu-storage-daemon back-ends: `uvirtio rehearse` migrating between two
// daemons that serve one image (requests throttled, so they are in flight at each stop) is hit by
// SIGINT or SIGKILL at seeded random moments. Afterwards:
//   - SIGINT ended it within 2 s with 130 (SIGKILL: 137);
//   - every snapshot file it left is complete (reads and validates); no temp file is taken for one;
//   - the daemons are still there and serve a new front-end: a new rehearsal on them succeeds,
//     exactly once and with the data intact, and sweeps what the killed one left.
// Then a rehearsal on one daemon alone: each reinit there opens a second front-end session on the
// same back-end (see the report of issue 10: it depends on the vhost-user reuse fix).
import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { randomInt, seededRandom } from '../../cli/rehearsal/random.js';
import { Background, sleep, summary, uvSync } from '../support/cli.js';
import { Daemon, makeImage } from './daemon.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(600_000);
const seed = Number(process.env.UVIRTIO_KILL_SEED ?? 7);
const rng = seededRandom(seed);
t.comment(`seed ${seed} (UVIRTIO_KILL_SEED)`);
const work = tempDir('uvirtio-vu-kill-');
const env = { UVIRTIO_RUNTIME_DIR: tempDir('uvirtio-vu-kill-rt-') };
const TEMP = /^\..+\.\d+\.tmp$/;
const KILLED = { SIGINT: 130, SIGKILL: 137 } as const;

const img = makeImage(16);
const a = await Daemon.start(img, 'a', { iops: 4000 });
const b = await Daemon.start(img, 'b', { iops: 4000 });
t.teardown(async () => {
  await a.kill('SIGKILL');
  await b.kill('SIGKILL');
  img.remove();
});

/**
 * Every file the killed run left is either complete (it reads and validates) or, after SIGKILL
 * only, a temp file no reader takes for a snapshot. One assertion per kind, whatever the number of
 * files (that depends on how many cycles ran before the signal), so the tier's count is stable.
 */
function checkFiles(t: Test, dir: string, sig: keyof typeof KILLED): string {
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
    } else {
      try {
        readSnapshotFile(join(dir, f));
        complete.push(f);
      } catch (e) {
        broken.push(`${f}: ${String((e as Error)?.message ?? e)}`);
      }
    }
  }
  t.same(broken, [], `every snapshot file left is complete (${complete.length} read and validated)`);
  t.ok(sig === 'SIGKILL' || temps.length === 0, `only a killed writer leaves a temp file (${temps.length} after ${sig})`);
  t.same(takenTemps, [], 'no temp file is taken for a snapshot (each is refused with E_SNAPSHOT_IO, "temporary file of an unfinished write")');
  return `${complete.length} complete snapshot file(s), ${temps.length} temp file(s)`;
}

function rehearseAgain(t: Test, args: string[], what: string): void {
  const r = uvSync(env, work, [...args, '--cycles', '2', '--json', '--timeout', '5000'], 120_000);
  t.equal(r.status, 0, `${what}: ${r.stderr.trim() || r.stdout.trim()}`);
  if (r.status === 0) t.match(r.json(), { ok: true, cycles: 2, requests: { lost: 0, duplicated: 0, corrupted: 0 } }, 'exactly once, data intact');
}

const sigintMs: number[] = [];

t.test('rehearse between two daemons, killed at random points; the daemons serve a new rehearsal', async (t) => {
  for (const sig of ['SIGINT', 'SIGKILL', 'SIGINT', 'SIGKILL', 'SIGINT', 'SIGKILL'] as const) {
    const dir = mkdtempSync(join(work, 'snapshots-'));
    const args = ['rehearse', '--device', a.address, '--to', b.address, '--mechanism', 'backend', '--snapshot-dir', dir];
    const at = randomInt(rng, 300, 2500);
    const run = new Background(env, work, [...args, '--cycles', '100000']);
    await sleep(at);
    const r = await run.signal(sig);
    t.ok(r.sent, `${sig} at ${at} ms reached it (it was still running: ${r.stderr.trim() || 'no error'})`);
    t.equal(r.status, KILLED[sig], `status ${KILLED[sig]}`);
    if (sig === 'SIGINT') {
      t.ok(r.ms <= 2000, `ended ${Math.round(r.ms)} ms after SIGINT`);
      sigintMs.push(r.ms);
    }
    const files = checkFiles(t, dir, sig);
    rehearseAgain(t, args, 'a new rehearsal on the same two daemons');
    t.same(readdirSync(dir).filter((f) => TEMP.test(f)), [], 'no temp file left');
    t.comment(`${sig} at ${at} ms → ${r.status} after ${Math.round(r.ms)} ms; ${files}; daemon stderr so far: ${(a.stderr + b.stderr).trim() || 'none'}`);
  }
  const s = summary(sigintMs);
  t.comment(`rehearse on vhost-user: SIGINT → exit ms  min ${s.min}  median ${s.median}  max ${s.max}  (n=${s.n})`);
});

t.test('after the kills, a rehearsal on one daemon alone (reinit on the same back-end: a new front-end session on it)', async (t) => {
  rehearseAgain(t, ['rehearse', '--device', a.address, '--mechanism', 'backend'], 'a rehearsal on daemon a alone');
});

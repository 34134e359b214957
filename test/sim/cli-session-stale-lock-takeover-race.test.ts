// Breaker 30c: a stale lock (its agent gone) taken over by several attaches at once is taken by
// more than one. takeLock() reads the stale holder, rmSync()s the path, then writes O_EXCL; a
// second taker that judged the same stale lock a moment later rmSync()s the FIRST taker's fresh
// lock and writes its own: both return "got it". Two agents then hold one device (or one session
// name: lockName uses the same takeLock). Seen in 4 of 10 rounds of 6 racers; with 10 racers the
// first failure came by round 2 in 4 of 4 runs. The same rm also hits a FRESH lock: a racer that
// reads a lock another racer has created (O_EXCL) but not yet written sees no holder twice and
// removes it (2-3 holders in 1 of 15 rounds of 6 racers, no stale lock at all).
// Expected: exactly one racer takes a stale lock; the others are refused E_SESSION_EXISTS naming
// the winner (e.g. take over by rename of a fresh lock over the stale one after re-checking, or
// by a link()/O_EXCL on a per-takeover guard file, never an unconditional rm of the path).
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { lockPath } from '../../cli/session/paths.js';

t.setTimeout(120_000); // 8 rounds of 10 Node processes: ~2 s a round when idle, 4-5 s on a loaded two-core machine
const paths = join(process.cwd(), 'dist', 'cli', 'session', 'paths.js');
const racer = `
const { lockDevice } = await import(${JSON.stringify(paths)});
const [dir, dev, name, at] = process.argv.slice(1);
while (Date.now() < Number(at)) {}
let r;
try { lockDevice(dir, dev, name); r = 'got'; } catch (e) { r = e.code ?? 'raw:' + String(e); }
process.stdout.write(r + '\\n');
// A holder stays alive (its flock held) until every racer has answered: the parent closes stdin
// then. (A fixed 600 ms let a racer that started late on a loaded machine take a lock whose holder
// had already exited — a free lock, not a race lost.)
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`;

function race(dir: string, n: number, at: number): Promise<string[]> {
  const racers = Array.from({ length: n }, (_, i) => spawn(process.execPath, ['--input-type=module', '-e', racer, dir, 'sim:blk', `s${i}`, String(at)],
    { stdio: ['pipe', 'pipe', 'inherit'] }));
  const answers = racers.map((p) => new Promise<string>((resolve) => {
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    p.on('exit', () => resolve(out.trim()));
  }));
  const exited = racers.map((p) => new Promise<void>((resolve) => p.on('exit', () => resolve())));
  return Promise.all(answers).then(async (outs) => {
    for (const p of racers) p.stdin.end();
    await Promise.all(exited);
    return outs;
  });
}

t.test('a stale device lock taken over by ten attaches at once has exactly one new holder', async (t) => {
  for (let round = 0; round < 8; round++) {
    const dir = tempDir('uvirtio-lockrace-');
    // The agent of session "ghost" was SIGKILLed: its pid is gone.
    writeFileSync(lockPath(dir, 'sim:blk'), JSON.stringify({ pid: 4_000_000, start: '1', session: 'ghost' }), { mode: 0o600 });
    const outs = await race(dir, 10, Date.now() + 800);
    const got = outs.filter((o) => o === 'got').length;
    t.same(outs.filter((o) => o !== 'got' && o !== 'E_SESSION_EXISTS'), [], `round ${round}: every loser is refused E_SESSION_EXISTS`);
    if (got !== 1) {
      t.equal(got, 1, `round ${round}: exactly one racer holds the lock (${outs.join(', ')})`);
      return;
    }
  }
  t.pass('one holder in every round');
});

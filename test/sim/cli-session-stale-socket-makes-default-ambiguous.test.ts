// Breaker 31b: the socket of an agent that was SIGKILLed (OOM killer, kill -9) stays in the runtime
// directory, and every command that finds its session by default (`stop`, `vq-state`, `snapshot`,
// `reinit`, `resume`, `detach` without --session) counts it as a session. With one live session
// beside it, each of them is refused E_SESSION_AMBIGUOUS "2 sessions are attached (dead, live)"
// (exit 2) — naming a session that has no agent — and keeps being refused for good: only a
// `status` (or a command naming the dead session) happens to remove the stale socket. A script
// that attached one device and kept going by default is stopped by a session that no longer
// exists. The default should count only sessions whose agent is there: a socket whose agent is
// gone is removed (README "A socket whose agent is gone is removed") and the one live session is
// used.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-stalesock-rt-');
const uv = uvInRuntime(runtime);

t.test('a SIGKILLed agent\'s socket does not make the default session ambiguous', async (t) => {
  t.teardown(() => {
    uv('detach', '--session', 'live');
    uv('detach', '--session', 'dead');
  });
  const dead = uv('attach', 'sim:blk', '--name', 'dead', '--json');
  t.equal(dead.status, 0, 'session "dead" attached');
  const pid = (JSON.parse(dead.stdout) as { pid: number }).pid;
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100; i++) {
    try { process.kill(pid, 0); } catch { break; }
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(existsSync(join(runtime, 'dead.sock')), 'the killed agent left its socket (nothing could remove it)');
  t.equal(uv('attach', 'sim:net', '--name', 'live').status, 0, 'session "live" attached: the only one with an agent');

  for (const cmd of [['stop'], ['vq-state'], ['resume']]) {
    const r = uv(...cmd, '--json');
    const refused = r.status === 2 && /E_SESSION_AMBIGUOUS/.test(r.stdout + r.stderr);
    t.notOk(refused, `\`uvirtio ${cmd.join(' ')}\` by default is not refused because of the dead session: exit ${r.status} ${(r.stdout + r.stderr).trim()}`);
  }
  const d = uv('detach');
  t.equal(d.status, 0, `\`uvirtio detach\` by default detaches the one live session: ${(d.stdout + d.stderr).trim()}`);
});

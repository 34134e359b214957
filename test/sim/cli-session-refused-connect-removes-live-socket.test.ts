// Breaker 31c. After `kill -9` of an agent its socket is stale. A session command run with
// --session (status, stop, detach…) connects to that path; the connect is refused; in its 'error'
// handler — a turn of the event loop later — protocol.ts removes the path unconditionally
// (`rmSync(path)`). If a new `attach --name` of that session bound its socket in between (two
// commands of a script or two users' shells at once; here the caller's event loop is held by a
// synchronous attach, as a loaded machine holds it), the LIVE session's socket is removed. The new
// agent then runs on, holding the device and the name lock, unreachable for good: `status` says
// "no sessions", `status/detach --session s` say E_NO_SESSION "no session", and `attach --name s`
// is refused E_SESSION_EXISTS — nothing but kill(1) ends it. Should: a refused connection removes
// the socket only if it is still the one it tried (same inode) and its name lock names no live
// agent (as listSessions() judges it); a live session's socket is never removed.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin, sleep, until, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-refusedrm-rt-');
process.env.UVIRTIO_RUNTIME_DIR = runtime; // for call() in this process
const uv = uvInRuntime(runtime);
const { call } = await import('../../cli/session/protocol.js');
const running = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

t.test('a command refused by a dead agent\'s socket does not remove the socket of the agent that replaced it', async (t) => {
  let newPid = 0;
  t.teardown(() => {
    uv('detach', '--session', 's');
    try { process.kill(newPid, 'SIGTERM'); } catch { /* gone */ }
  });
  let r = uv('attach', 'sim:blk', '--name', 's', '--json');
  t.equal(r.status, 0, r.stderr);
  const oldPid = (JSON.parse(r.stdout) as { pid: number }).pid;
  process.kill(oldPid, 'SIGKILL');
  t.ok(await until(() => !running(oldPid), 5000), 'the agent was killed (its socket is left)');
  t.ok(existsSync(join(runtime, 's.sock')), 'its stale socket is there');

  // `status --session s` in this process: the connect is refused now, its handler runs later…
  const status = call('s', { cmd: 'status' }, 5000).then(() => 'answered', (e: { code?: string }) => e.code ?? String(e));
  // …and meanwhile a new `attach --name s` completes (this process's loop is held until it has).
  const a = spawnSync(process.execPath, [bin, 'attach', 'sim:blk', '--name', 's', '--json'], { encoding: 'utf8', timeout: 30_000, env: process.env });
  t.equal(a.status, 0, `the new attach succeeded: ${a.stderr}`);
  newPid = (JSON.parse(a.stdout) as { pid: number }).pid;
  t.comment(`the status that was refused: ${await status}`);
  await sleep(50);

  t.ok(running(newPid), 'the new agent runs');
  t.ok(existsSync(join(runtime, 's.sock')), 'the live session\'s socket is still there');
  r = uv('status', '--session', 's');
  t.equal(r.status, 0, `status --session s reaches the live session (${(r.stdout + r.stderr).trim()})`);
  r = uv('detach', '--session', 's');
  t.equal(r.status, 0, `detach --session s ends it (${(r.stdout + r.stderr).trim()})`);
  t.ok(await until(() => !running(newPid), 5000), 'and the agent is gone');
});

// Breaker 31c. "The agent closes its device before removing socket and locks" holds for the locks
// but not for the socket: release() calls server.close() first, and closing a listening UNIX
// socket unlinks its path (libuv), so at SIGTERM with a step running (a stop the device never
// shows: the agent waits SETTLE_MS for it) the socket is gone at once while the agent still holds
// the device and both locks. In that window `uvirtio status` says "no sessions", `status --session
// s` and `detach --session s` say E_NO_SESSION "no session" (exit 2), yet `attach` of the device
// is refused E_SESSION_EXISTS naming session "s": the listing says the session is gone while it
// still holds the device, and a script cannot wait for its end through it. Should: the session is
// listed (or its end reported: ending, held by pid N) until its device is closed — its socket path
// stays until the locks go (no new connections can be refused in other ways), or status and
// detach tell a session that is ending from one that is not there. (Deterministic: the agent is
// SIGSTOPped the moment its socket is gone; its log says whether its device was closed yet.)
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Background, until, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-sockfirst-rt-');
const env = { UVIRTIO_RUNTIME_DIR: runtime };
const uv = uvInRuntime(runtime);
const DEV = 'sim:blk?fault=stop-stuck';

t.test('after SIGTERM, while the agent still holds its device, status does not say the session is gone', async (t) => {
  const a = uv('attach', DEV, '--name', 's', '--json', '--timeout', '4000');
  t.equal(a.status, 0, a.stderr);
  const pid = (JSON.parse(a.stdout) as { pid: number }).pid;
  t.teardown(() => {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  });
  const log = join(runtime, 's.log');
  const stop = new Background(env, process.cwd(), ['stop', '--session', 's', '--timeout', '4000']);
  t.ok(await until(() => readFileSync(log, 'utf8').includes('stop: received'), 10_000), 'the agent is running a stop');
  process.kill(pid, 'SIGTERM');
  t.ok(await until(() => !existsSync(join(runtime, 's.sock')), 5000), 'the socket went');
  process.kill(pid, 'SIGSTOP');
  const closed = /session s: ended/.test(readFileSync(log, 'utf8'));
  const list = uv('status');
  const one = uv('status', '--session', 's');
  const att = uv('attach', DEV, '--name', 'other');
  t.comment(`device closed yet: ${closed}; status: ${list.stdout.trim()}; status --session s: exit ${one.status} ${one.stderr.trim()}; attach: exit ${att.status} ${att.stderr.trim()}`);
  t.ok(closed, 'the socket is removed only after the device was closed');
  t.notOk(att.status === 2 && /session "s"/.test(att.stderr) && list.stdout.trim() === 'no sessions',
    'status does not say "no sessions" while attach is refused because session "s" holds the device');
  process.kill(pid, 'SIGCONT');
  await stop.signal('SIGKILL');
});

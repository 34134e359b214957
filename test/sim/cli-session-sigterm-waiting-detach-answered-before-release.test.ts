// Breaker 31c. A `detach` waiting in the agent's queue when the agent is ended by SIGTERM is
// answered "detached" (exit 0) at once — by answerWaiting(), at the START of the release — while
// the agent is still alive, still holding the device (it waits up to SETTLE_MS for the step
// running, here a stop the device never shows) and its name lock and device lock are still there:
// `attach` of the same device right after that detach returned is refused E_SESSION_EXISTS. The
// README promises "`detach` returns once the session is gone: its socket and locks removed and its
// devices closed (reset), so the next command of a script may attach the same device at once";
// a detach that ends the session itself keeps that promise, one that waited behind a running step
// does not. Should: a waiting detach is answered only once the session is gone (devices closed,
// socket and locks removed), or — when a step still running keeps the device until the exit — it
// is not told "detached" before that. (Deterministic: the agent is SIGSTOPped the moment the
// detach returns, so what the test sees is what the detach's caller could see.)
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Background, until, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-waitdetach-rt-');
const env = { UVIRTIO_RUNTIME_DIR: runtime };
const uv = uvInRuntime(runtime);
const DEV = 'sim:blk?fault=stop-stuck';
const running = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

t.test('a detach waiting behind a running stop, answered at SIGTERM: the session is gone when it returns 0', async (t) => {
  let pid = 0;
  t.teardown(() => {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    uv('detach', '--session', 'next');
  });
  const a = uv('attach', DEV, '--name', 's', '--json', '--timeout', '4000');
  t.equal(a.status, 0, `attached: ${a.stderr}`);
  pid = (JSON.parse(a.stdout) as { pid: number }).pid;
  const log = join(runtime, 's.log');
  const stop = new Background(env, process.cwd(), ['stop', '--session', 's', '--timeout', '4000']);
  t.ok(await until(() => readFileSync(log, 'utf8').includes('stop: received'), 10_000), 'the agent is running the stop (the device never shows STOP)');
  const detach = new Background(env, process.cwd(), ['detach', '--session', 's']);
  t.ok(await until(() => readFileSync(log, 'utf8').includes('detach: received'), 10_000), 'a detach waits behind it');

  process.kill(pid, 'SIGTERM');
  const d = await detach.exited;
  if (running(pid)) process.kill(pid, 'SIGSTOP'); // hold the agent where it was when the detach returned
  const agentRunning = running(pid);
  const left = readdirSync(runtime).filter((f) => !f.endsWith('.log'));
  const again = uv('attach', DEV, '--name', 'next');
  t.comment(`detach: exit ${d.status} ${(d.stdout + d.stderr).trim()}; then: agent pid ${pid} ${agentRunning ? 'still running' : 'gone'}, left ${JSON.stringify(left)}; attach of the same device: exit ${again.status} ${(again.stdout + again.stderr).trim()}`);
  if (d.status === 0) {
    t.notOk(agentRunning, 'a detach that says "detached" returns after the agent let go of the device');
    t.same(left, [], 'no socket, name lock or device lock is left when it returns');
    t.equal(again.status, 0, 'the next command of the script attaches the same device at once');
  } else {
    t.pass(`the detach did not claim the session was gone (exit ${d.status})`);
  }
  try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  await stop.signal('SIGKILL');
  await until(() => !running(pid), 5000);
});

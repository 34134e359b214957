// Breaker 31b: the same kind as the detach that answered before the release, on the agent's other
// way out. A session agent told to end by SIGTERM/SIGINT (a shutdown, `kill`, systemd) removes its
// socket and unlocks its device FIRST and only then closes the device — after the step running
// settles, up to SETTLE_MS (800 ms) + the close's own bound, exiting after. For that whole time the
// runtime directory says the session is gone (`status`: no sessions) and the device lock is free,
// so `uvirtio attach` of the same device succeeds at once while the old agent is still alive and
// still holds the device: two agents on one device, which the lock is there to prevent (on VFIO the
// new open fails on the busy group instead of E_SESSION_EXISTS; a one-front-end vhost-user
// back-end stalls the new attach). Should: as detach now does, the socket and lock go only once
// the device is released (or the agent is gone): an attach that finds the lock free never runs
// beside the old agent. (The old agent is SIGSTOPped once its socket is gone, so the window is
// deterministic; "its device closed" is read from its log line "session old: ended (status N)".)
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Background, until, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-termrelease-rt-');
const uv = uvInRuntime(runtime);
const DEV = 'sim:blk?fault=stop-stuck';
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('an attach that finds the device free after an agent\'s SIGTERM does not run beside that agent', async (t) => {
  t.teardown(() => {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    uv('detach', '--session', 'old');
    uv('detach', '--session', 'new');
  });
  const a = uv('attach', DEV, '--name', 'old', '--traffic', '2', '--json');
  t.equal(a.status, 0, 'session "old" attached');
  const pid = (JSON.parse(a.stdout) as { pid: number }).pid;
  const log = join(runtime, 'old.log');
  // A step in progress when the signal comes (a stop the device never shows): the agent waits for it.
  const stop = new Background({ UVIRTIO_RUNTIME_DIR: runtime }, process.cwd(), ['stop', '--session', 'old', '--timeout', '5000']);
  t.ok(await until(() => readFileSync(log, 'utf8').includes('stop: received'), 10_000), 'the agent is stopping the device');

  process.kill(pid, 'SIGTERM');
  // (Corrected after the fix: the socket now stays until the device is released, so the agent is
  // held once status shows the session ending.)
  t.ok(await until(() => /"phase":"ending"/.test(uv('status', '--session', 'old', '--json').stdout), 5000), 'the agent is ending the session');
  // Deterministic: the old agent is held where it is (as a loaded machine would), still waiting to close its device.
  process.kill(pid, 'SIGSTOP');
  const n = uv('attach', DEV, '--name', 'new', '--json');
  const oldAlive = alive(pid);
  // The agent logs "session old: ended (status N)" once its devices are closed; with "a step was
  // still running" appended when it left them to its exit.
  const released = /session old: ended \(status \d+\)\n/.test(readFileSync(log, 'utf8'));
  t.comment(`attach of the same device at once: exit ${n.status} ${(n.stdout + n.stderr).trim()}; the old agent (pid ${pid}) ${oldAlive ? `is still running, its device ${released ? 'closed' : 'not closed yet'}` : 'is gone'}`);
  t.notOk(n.status === 0 && oldAlive && !released, 'the device is not attached to a new session while the old agent still holds it');
  process.kill(pid, 'SIGCONT');
  await stop.signal('SIGKILL');
  await until(() => !alive(pid), 5000);
  t.comment(readFileSync(log, 'utf8').trim());
});

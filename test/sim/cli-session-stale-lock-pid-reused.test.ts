// Breaker 30: a device lock left by an agent that was SIGKILLed (OOM killer, kill -9) is judged
// stale only by whether its pid is alive. Once that pid is reused by any other process, the lock
// blocks the device for good: `attach` is refused E_SESSION_EXISTS "already attached (session
// ghost, agent pid N)" with the hint `uvirtio detach --session ghost`, which answers E_NO_SESSION,
// while `status` lists no session. Nothing the CLI offers clears it. The lock names its session:
// a lock whose session has no agent answering on its socket is stale too. (Pid reuse is simulated
// by a lock naming a live process that is not an agent, as a reused pid would.)
// Fixer: the lock's path comes from lockPath (locks are now named prefix + hash of the address).
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tempDir } from '../support/tmp.js';
import { lockPath, processStart } from '../../cli/session/paths.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-stalelock-rt-');

const uv = uvInRuntime(runtime);

// The lock is where uvirtio keeps the device's lock (its file name is uvirtio's own: lockPath);
// it records its agent's start time (a reused pid's process started later), or — written by an
// older uvirtio — none.
for (const [what, start] of [['with the agent\'s start time', 'earlier'], ['without a start time (an older lock)', undefined]] as const)
t.test(`a lock whose pid now belongs to another process does not keep the device from being attached (${what})`, async (t) => {
  // The agent of session "ghost" was SIGKILLed: its lock stays; its pid now runs something else.
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => {
    uv('detach', '--session', 'fresh');
    other.kill('SIGKILL');
  });
  const agentStart = start === undefined ? {} : { start: String(Number(processStart(other.pid!) ?? 2) - 1) };
  writeFileSync(lockPath(runtime, 'sim:blk'), JSON.stringify({ pid: other.pid, ...agentStart, session: 'ghost' }), { mode: 0o600 });
  const st = uv('status', '--json');
  t.same(JSON.parse(st.stdout), [], 'no session is attached');
  const a = uv('attach', 'sim:blk', '--name', 'fresh');
  if (a.status !== 0) {
    t.comment(`attach: ${a.stderr.trim()}`);
    const d = uv('detach', '--session', 'ghost');
    t.comment(`the hint's detach --session ghost: exit ${d.status}: ${d.stderr.trim()}`);
  }
  t.equal(a.status, 0, 'the device is attached: the lock\'s session "ghost" has no agent');
});

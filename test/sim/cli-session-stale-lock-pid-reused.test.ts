// Breaker 30: a device lock left by an agent that was SIGKILLed (OOM killer, kill -9) is judged
// stale only by whether its pid is alive. Once that pid is reused by any other process, the lock
// blocks the device for good: `attach` is refused E_SESSION_EXISTS "already attached (session
// ghost, agent pid N)" with the hint `uvirtio detach --session ghost`, which answers E_NO_SESSION,
// while `status` lists no session. Nothing the CLI offers clears it. The lock names its session:
// a lock whose session has no agent answering on its socket is stale too. (Pid reuse is simulated
// by a lock naming a live process that is not an agent, as a reused pid would.)
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-stalelock-rt-');

function uv(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL', env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('a lock whose pid now belongs to another process does not keep the device from being attached', async (t) => {
  // The agent of session "ghost" was SIGKILLed: its lock stays; its pid now runs something else.
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.teardown(() => {
    uv('detach', '--session', 'fresh');
    other.kill('SIGKILL');
  });
  writeFileSync(join(runtime, 'device-sim-blk.lock'), JSON.stringify({ pid: other.pid, session: 'ghost' }), { mode: 0o600 });
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

// Breaker 30: two `uvirtio attach` of different devices with the same --name, started together
// (two terminals, or a script that backgrounds its attaches): attach checks that the name is free
// before it starts its agent, and each agent's listen() first removes whatever sits at
// NAME.sock — so both commands report "attached … as session NAME" (exit 0), the second agent
// takes the socket from the first, and the first agent is orphaned: unreachable, holding its device
// and its lock for good (a later attach of that device: E_SESSION_EXISTS, "detach --session NAME
// first", which ends the other agent). One of the two must be refused E_SESSION_EXISTS (exit 2).
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-samename-rt-');
const env = { ...process.env, UVIRTIO_RUNTIME_DIR: runtime };

function uv(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stdout, stderr })));
}

/** Running (a zombie waiting for its reaper has exited: not alive). */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

const agents: number[] = [];
t.teardown(() => {
  for (const pid of agents) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
});

t.test('two attaches with one --name at once: one session, the other refused; detach leaves no agent', async (t) => {
  const [a, b] = await Promise.all([uv('attach', 'sim:blk', '--name', 'same', '--json'), uv('attach', 'sim:net', '--name', 'same', '--json')]);
  for (const r of [a, b]) if (r.status === 0) agents.push((JSON.parse(r.stdout) as { pid: number }).pid);
  t.equal([a, b].filter((r) => r.status === 0).length, 1, `exactly one attach succeeds (exits ${a.status}, ${b.status}; agents ${agents.join(', ')})`);
  t.ok([a, b].some((r) => r.status === 2 && /E_SESSION_EXISTS/.test(r.stdout)), 'the other is refused E_SESSION_EXISTS');
  const d = await uv('detach', '--session', 'same');
  t.equal(d.status, 0, d.stderr);
  await new Promise((r) => setTimeout(r, 1500));
  t.same(agents.filter(alive), [], 'no agent is left holding a device after the session was detached');
  t.same(readdirSync(runtime).filter((f) => !f.endsWith('.log')), [], 'no socket or lock left behind');
});

// Breaker 30: a session's socket is `$RUNTIME/<name>.sock`, and a UNIX socket path holds at most
// 107 bytes (sun_path). With a runtime directory of 64 characters and a 60-character session name
// (both accepted: checkName allows 64), the kernel binds the truncated path: `attach` reports
// "attached … as session N" (exit 0), but the session's socket does not exist under its name, so
// `status` says "no sessions", `stop`/`detach --session N` say E_NO_SESSION, and a new attach of
// the device is refused E_SESSION_EXISTS with the hint to `detach --session N` — which cannot
// reach it. The agent holds the device until someone finds its pid; after a SIGTERM it leaves the
// truncated socket file behind. An attach must refuse a name whose socket path does not fit
// (exit 2, nothing left), or the session must work.
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const base = tempDir('uvirtio-longrt-');
const runtime = join(base, 'r'.repeat(Math.max(1, 64 - base.length - 1)));
mkdirSync(runtime, { recursive: true });
const NAME = 's'.repeat(60);

const uv = uvInRuntime(runtime);

let agent: number | undefined;
t.teardown(() => {
  if (agent !== undefined) try { process.kill(agent, 'SIGKILL'); } catch { /* gone */ }
});

t.test(`a ${runtime.length}-character runtime dir and a 60-character session name: attach refuses, or the session is reachable`, async (t) => {
  t.ok(`${runtime}/${NAME}.sock`.length > 107, 'the socket path is longer than sun_path holds');
  const a = uv('attach', 'sim:blk', '--name', NAME, '--json');
  if (a.status === 0) {
    agent = (JSON.parse(a.stdout) as { pid: number }).pid;
    const st = uv('status', '--session', NAME);
    t.equal(st.status, 0, `the session attach reported answers: ${st.stderr.trim()}`);
    const d = uv('detach', '--session', NAME);
    t.equal(d.status, 0, `and can be detached: ${d.stderr.trim()}`);
  } else {
    t.equal(a.status, 2, `refused as bad input: ${a.stderr.trim()}`);
  }
  const again = uv('attach', 'sim:blk', '--name', 'short', '--json');
  if (again.status === 0) uv('detach', '--session', 'short');
  t.equal(again.status, 0, `the device is free again: ${again.stdout.trim()}`);
  t.same(readdirSync(runtime).filter((f) => !f.endsWith('.log')), [], 'no socket or lock left behind');
});

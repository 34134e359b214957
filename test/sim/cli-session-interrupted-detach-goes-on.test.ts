// Breaker 31b: `uvirtio detach --verify` interrupted (SIGINT) once the agent has taken it exits 130
// with "what was running was abandoned" — but the agent goes on draining and verifying, and then
// ends the session anyway. The user's next command, the same `detach` run again at once, is queued
// behind the "abandoned" one: it waits for the whole verification and then fails, exit 2,
// E_NO_SESSION "closed the connection without answering" — although the session is gone exactly as
// asked. Neither command told the truth: the first said abandoned (the detach happened), the second
// said there was no session to answer (its own request was never run). Should: an interrupted
// command is abandoned in the agent too (the session stays as it was), or the next detach reports
// the session detached (exit 0), never an error for a detach that took place.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Background, until, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-intdetach-rt-');
const uv = uvInRuntime(runtime);

t.test('detach at once after an interrupted detach --verify reports the session detached', async (t) => {
  t.teardown(() => uv('detach', '--session', 's'));
  t.equal(uv('attach', 'sim:blk?latency=400', '--name', 's', '--traffic', '4').status, 0, 'attached, traffic in flight');
  const log = join(runtime, 's.log');
  const first = new Background({ UVIRTIO_RUNTIME_DIR: runtime }, process.cwd(), ['detach', '--session', 's', '--verify', '--timeout', '3000']);
  t.ok(await until(() => readFileSync(log, 'utf8').includes('detach: received'), 10_000), 'the agent took the detach --verify');
  const out = await first.signal('SIGINT');
  t.equal(out.status, 130, `the first detach was interrupted: ${out.stderr.trim()}`);

  const again = uv('detach', '--session', 's');
  t.comment(`agent log:\n${readFileSync(log, 'utf8').trim()}`);
  const status = uv('status', '--json');
  const gone = (JSON.parse(status.stdout) as unknown[]).length === 0;
  t.equal(again.status, gone ? 0 : again.status, `the detach run again: exit ${again.status} ${(again.stdout + again.stderr).trim()}` +
    ` — the session is ${gone ? 'gone, so it reports it detached' : 'still there'}`);
});

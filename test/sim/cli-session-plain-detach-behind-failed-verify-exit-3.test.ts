// Breaker 31c. A plain `detach` (no --verify) queued behind a `detach --verify` that fails — the
// device stops completing (fault=completion-silence), the drain hits --timeout, E_DEVICE_UNRESPONSIVE,
// "no verdict, and the session was ended" — is answered with the verify's ERROR: exit 3,
// "uvirtio: E_DEVICE_UNRESPONSIVE: waiting for 4 requests in flight …", while the agent's log says
// "detach: answered: the session was detached (what it asked)". The plain detach asked only for the
// session to end, got exactly that, and a plain detach on a failed device is documented to end the
// session (README: "`detach` ends the session"), exit 0; answerWaiting() hands every waiting
// non-verify detach `this.ended`, whatever that response was. Should: the waiting plain detach is
// answered detached (exit 0, verdict null, the session ended), as its log line already says; only
// a waiting detach --verify goes without a verdict.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Background, until, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-plainbehind-rt-');
const env = { UVIRTIO_RUNTIME_DIR: runtime };
const uv = uvInRuntime(runtime);
t.teardown(() => void uv('detach', '--session', 's'));

t.test('a plain detach waiting behind a failed detach --verify exits 0: the session ended, as it asked', async (t) => {
  const a = uv('attach', 'sim:blk?fault=completion-silence', '--name', 's', '--traffic', '4');
  t.equal(a.status, 0, `attached: ${a.stderr}`);
  const log = join(runtime, 's.log');
  const verify = new Background(env, process.cwd(), ['detach', '--session', 's', '--verify', '--timeout', '1500']);
  t.ok(await until(() => readFileSync(log, 'utf8').includes('detach: received'), 10_000), 'the detach --verify is draining');
  const plain = new Background(env, process.cwd(), ['detach', '--session', 's', '--json']);
  t.ok(await until(() => readFileSync(log, 'utf8').split('detach: received').length === 3, 10_000), 'a plain detach waits behind it');
  const v = await verify.exited;
  const p = await plain.exited;
  t.comment(`detach --verify: exit ${v.status} ${v.stderr.trim()}`);
  t.comment(`plain detach: exit ${p.status} ${(p.stdout + p.stderr).trim()}`);
  t.equal(v.status, 3, 'the detach --verify reports the device\'s failure (exit 3)');
  t.equal(p.status, 0, 'the plain detach behind it exits 0: the session it asked to end has ended');
  t.notMatch(p.stdout + p.stderr, /E_DEVICE_UNRESPONSIVE/, 'and is not handed the verification\'s error');
  t.match(p.stdout, /"session":"s"/, 'its answer names the session detached');
  t.equal(uv('status', '--session', 's').status, 2, 'the session is gone');
});

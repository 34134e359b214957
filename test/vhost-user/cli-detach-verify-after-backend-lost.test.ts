// Breaker 30: the back-end of an attached session dies (qemu-storage-daemon kill -9) while
// `attach --traffic` runs: the requests in flight are rejected E_VHOST_LOST and the device is
// needs-reset. `uvirtio detach --verify` then answers E_BAD_STATE with exit 2 — "bad usage or
// input, nothing was changed" — and the hint "resume it (uvirtio resume) or reinit it first",
// both of which are refused on a needs-reset device (exit 2 again). A script (examples/rehearse.sh)
// gets neither a verdict nor a device error: the lost requests are reported as a usage mistake.
// README: exit 1 the verdict failed, 3 device or platform error; detach --verify is refused with
// E_BAD_STATE only "while the device is stopped".
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-vu-lostverify-rt-');

const uv = uvInRuntime(runtime);

t.test('detach --verify after the back-end died mid-traffic: a verdict (exit 1) or a device error (exit 3), not "bad usage"', async (t) => {
  const img = makeImage(16);
  const d = await Daemon.start(img, 'dies');
  t.teardown(async () => {
    uv('detach', '--session', 'lost');
    await d.kill('SIGKILL');
    img.remove();
  });
  const a = uv('attach', d.address, '--name', 'lost', '--traffic', '16', '--timeout', '2000');
  t.equal(a.status, 0, a.stderr);
  await new Promise((r) => setTimeout(r, 300));
  await d.kill('SIGKILL');
  let phase = '';
  for (let i = 0; i < 50 && phase !== 'needs-reset'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    phase = (JSON.parse(uv('status', '--session', 'lost', '--json').stdout) as { phase: string }).phase;
  }
  t.equal(phase, 'needs-reset', 'the session saw the back-end go');
  const v = uv('detach', '--session', 'lost', '--verify', '--timeout', '2000');
  t.comment(`detach --verify: exit ${v.status}: ${v.stdout.trim()} ${v.stderr.trim()}`);
  t.ok(v.status === 1 || v.status === 3, `exit 1 (requests lost) or 3 (the back-end failed), got ${v.status}`);
  t.notMatch(v.stderr, /resume it \(uvirtio resume\) or reinit it/, 'no hint to resume or reinit a device that needs a reset');
});

// Breaker 30: `uvirtio stop --timeout 1000` on a vhost-user session whose back-end is stalled
// (qemu-storage-daemon SIGSTOPped, as a host under memory pressure or a debugger would) runs for
// ~6.3 s — the backend stop ignores the stop's timeoutMs (the ring settle and GET_VRING_BASE wait
// on the transport's drain= and timeout= bounds, 5 s each by default) and the agent's backstop is
// --timeout + 5 s — and then reports E_REQUEST_TIMEOUT (exit 3) while the agent's stop goes on in
// the background: once the back-end runs again the session is `stopped (backend)`, though the
// command said the stop failed. README: --timeout is "the bound on each wait for the device — a
// stop"; a stop that failed leaves the device failed/reset, never stopped behind the caller's back.
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-vu-stopbound-rt-');

const uv = uvInRuntime(runtime);

t.test('stop --timeout 1000 with the back-end stalled: ends within the bound (+2 s), and a failed stop does not leave the session stopped', async (t) => {
  const img = makeImage(16);
  const d = await Daemon.start(img, 'stalled');
  t.teardown(async () => {
    try { process.kill(d.pid, 'SIGCONT'); } catch { /* gone */ }
    uv('detach', '--session', 'vu');
    await d.kill('SIGKILL');
    img.remove();
  });
  const a = uv('attach', d.address, '--name', 'vu', '--traffic', '8', '--timeout', '1000');
  t.equal(a.status, 0, a.stderr);
  await new Promise((r) => setTimeout(r, 300));
  process.kill(d.pid, 'SIGSTOP');
  const t0 = Date.now();
  const stop = uv('stop', '--session', 'vu', '--timeout', '1000');
  const ms = Date.now() - t0;
  process.kill(d.pid, 'SIGCONT');
  t.comment(`stop: status ${stop.status} after ${ms} ms: ${stop.stderr.trim()}`);
  t.equal(stop.status, 3, 'the stop failed: a device error');
  t.ok(ms <= 3000, `uvirtio stop --timeout 1000 ended within 3000 ms (took ${ms} ms)`);
  await new Promise((r) => setTimeout(r, 1000)); // the back-end runs again
  const st = uv('status', '--session', 'vu', '--json');
  const phase = st.status === 0 ? (JSON.parse(st.stdout) as { phase: string }).phase : `status exit ${st.status}`;
  t.not(phase, 'stopped', 'the stop the command reported as failed did not complete behind its back');
});

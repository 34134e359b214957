// Breaker 30: `uvirtio reinit --to vhost-user:B` while back-end B is stalled (SIGSTOPped) fails
// after --timeout (E_REQUEST_TIMEOUT, "opening … did not end"), as it should — but the session
// agent abandons the open without closing it: once B runs again the connection completes its
// handshake and stays open in the agent, unused. B serves one front-end at a time, so from then
// on every `reinit --to B` of that session fails (E_REQUEST_TIMEOUT, or E_VHOST_BUSY "serving
// another front-end" with a longer --timeout) — the other front-end is the session itself — until
// the session is detached. A refused reinit must leave nothing open on its target.
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-vu-stalledto-rt-');
const work = tempDir('uvirtio-vu-stalledto-');

const uv = uvInRuntime(runtime, work);

t.test('a reinit --to a stalled back-end that timed out leaves the back-end free once it runs again', async (t) => {
  const img = makeImage(16);
  const a = await Daemon.start(img, 'a');
  const b = await Daemon.start(img, 'b');
  t.teardown(async () => {
    try { process.kill(b.pid, 'SIGCONT'); } catch { /* gone */ }
    uv('detach', '--session', 'mv');
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    img.remove();
  });
  t.equal(uv('attach', a.address, '--name', 'mv', '--traffic', '8').status, 0, 'attached');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(uv('stop', '--session', 'mv').status, 0, 'stopped');
  t.equal(uv('snapshot', '--session', 'mv', '--out', 'state.json').status, 0, 'snapshot taken');

  process.kill(b.pid, 'SIGSTOP');
  const stalled = uv('reinit', '--session', 'mv', '--from', 'state.json', '--to', b.address, '--timeout', '1000');
  process.kill(b.pid, 'SIGCONT');
  t.equal(stalled.status, 3, `refused while B is stalled: ${stalled.stderr.trim()}`);
  await new Promise((r) => setTimeout(r, 1000)); // B runs again

  const again = uv('reinit', '--session', 'mv', '--from', 'state.json', '--to', b.address, '--timeout', '3000');
  t.equal(again.status, 0, `B, running again, takes the reinit: ${again.stderr.trim()}`);
  const st = JSON.parse(uv('status', '--session', 'mv', '--json').stdout) as { phase: string; driving: string };
  t.match(st, { phase: 'live', driving: b.address }, 'the session drives B');
});

// Breaker 30c: the device lock is taken for the address given to `attach` only. After
// `uvirtio reinit --session s1 --from F --to vhost-user:B` the session drives (and holds) B, but
// no lock names B: a second `attach B --name s2` is not refused E_SESSION_EXISTS naming s1 (exit 2,
// as README "The command line" promises for "a second attach of the same device"); it goes on to
// open B and fails after --timeout with the back-end's E_VHOST_BUSY ("serving another front-end
// (a uvirtio process or session agent, a VM)", exit 3: a device error). Likewise `reinit --to B`
// of a session whose B another session is attached to is not refused by the lock (only the
// back-end's own one-front-end rule stops either). Expected: the session takes B's lock when it opens B (a reinit --to that
// finds it held is refused E_SESSION_EXISTS before opening), and releases it with the session.
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-vu-tolock-rt-');
const work = tempDir('uvirtio-vu-tolock-');

const uv = uvInRuntime(runtime, work);

t.test('a device a session moved to with reinit --to is locked like an attached one', async (t) => {
  const imgA = makeImage(16);
  const imgB = makeImage(16);
  const a = await Daemon.start(imgA, 'a');
  const b = await Daemon.start(imgB, 'b');
  t.teardown(async () => {
    uv('detach', '--session', 's1');
    uv('detach', '--session', 's2');
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    imgA.remove();
    imgB.remove();
  });
  t.equal(uv('attach', a.address, '--name', 's1', '--timeout', '1000').status, 0, 'attached A as s1');
  t.equal(uv('stop', '--session', 's1').status, 0, 'stopped');
  t.equal(uv('snapshot', '--session', 's1', '--out', 'state.json').status, 0, 'snapshot taken');
  const r = uv('reinit', '--session', 's1', '--from', 'state.json', '--to', b.address, '--timeout', '1000');
  t.equal(r.status, 0, `s1 moved to B: ${r.stderr}`);

  const second = uv('attach', b.address, '--name', 's2', '--timeout', '1000');
  t.comment(`attach B: status ${second.status}: ${second.stderr.trim()}`);
  t.equal(second.status, 2, 'a second attach of B is refused as usage (exit 2)');
  t.match(second.stderr, /E_SESSION_EXISTS/, 'E_SESSION_EXISTS');
  t.match(second.stderr, /"s1"/, 'naming the session that holds B');
});

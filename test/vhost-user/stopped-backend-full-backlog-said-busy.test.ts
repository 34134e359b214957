// Breaker 30c: a back-end that is stopped (SIGSTOP) is reported E_VHOST_TIMEOUT naming its pid
// ("the back-end process (pid N) is stopped") only while a connect() gets through. Each front-end
// that tried and gave up leaves its connection in the stopped back-end's listen queue (nobody
// accepts it); once that queue is full (qemu-storage-daemon: after two tries), the next open is
// reported E_VHOST_BUSY "the back-end accepted no connection within 1000 ms (its listen backlog
// stayed full): it is serving another front-end" — the wrong verdict, and a hint to find another
// front-end that does not exist, though the process is as stopped as before. Expected: the same
// E_VHOST_TIMEOUT naming the stopped pid (and kill -CONT) whichever step the open waited at.
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-vu-backlog-rt-');

const uv = uvInRuntime(runtime);

t.test('every open of a SIGSTOPped back-end says it is stopped, also once its listen queue is full', async (t) => {
  const img = makeImage(16);
  const d = await Daemon.start(img, 'stopped');
  t.teardown(async () => {
    try { process.kill(d.pid, 'SIGCONT'); } catch { /* gone */ }
    await d.kill('SIGKILL');
    img.remove();
  });
  process.kill(d.pid, 'SIGSTOP');
  for (let i = 1; i <= 3; i++) {
    const r = uv('info', d.address, '--timeout', '1000');
    t.comment(`info #${i}: status ${r.status}: ${r.stderr.trim().slice(0, 240)}`);
    t.equal(r.status, 3, `info #${i}: a device error`);
    t.match(r.stderr, /E_VHOST_TIMEOUT/, `info #${i}: E_VHOST_TIMEOUT`);
    t.match(r.stderr, new RegExp(`pid ${d.pid}\\) is stopped`), `info #${i}: names the stopped back-end`);
    t.notMatch(r.stderr, /serving another front-end/, `info #${i}: no other front-end blamed`);
  }
});

// Breaker 30: `uvirtio rehearse --device vhost-user:SOCK --timeout 1000` against a stalled back-end
// (qemu-storage-daemon SIGSTOPped: the kernel still accepts the connection, nobody reads it) runs
// ~5.2 s and fails E_VHOST_BUSY "it is serving another front-end" (nobody else is connected):
// rehearse bounds each device step by --timeout + 5 s, so the vhost-user default reply timeout
// (5 s) decides. `uvirtio info` and `uvirtio attach` on the same stalled daemon with --timeout 1000
// end after ~1.3 s with E_REQUEST_TIMEOUT naming the 1000 ms. README: --timeout is the bound on
// each wait for the device.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-vu-rehearsebound-rt-');

function timed(...args: string[]) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL', env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

t.test('rehearse --timeout 1000 on a stalled back-end ends within the bound (+2 s), as info does', async (t) => {
  const img = makeImage(16);
  const d = await Daemon.start(img, 'stalled');
  t.teardown(async () => {
    try { process.kill(d.pid, 'SIGCONT'); } catch { /* gone */ }
    await d.kill('SIGKILL');
    img.remove();
  });
  process.kill(d.pid, 'SIGSTOP');
  const info = timed('info', d.address, '--timeout', '1000');
  t.comment(`info: exit ${info.status} after ${info.ms} ms: ${info.stderr.trim()}`);
  t.ok(info.ms <= 3000, `info --timeout 1000 ended within 3000 ms (${info.ms} ms)`);
  const r = timed('rehearse', '--device', d.address, '--timeout', '1000', '--json');
  t.comment(`rehearse: exit ${r.status} after ${r.ms} ms: ${r.stdout.trim()}`);
  t.equal(r.status, 3, 'a device error');
  t.ok(r.ms <= 3000, `rehearse --timeout 1000 ended within 3000 ms (took ${r.ms} ms)`);
  t.notMatch(r.stdout, /serving another front-end/, 'no other front-end is connected: the back-end is stalled');
});

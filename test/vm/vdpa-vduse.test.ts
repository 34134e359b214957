// VM tier, vdpa profile with uvirtio.vduse=1 (test/vm/guest/vdpa-vduse.ts): a real vDPA parent
// without suspend (VDUSE). vhost-vdpa offers no VHOST_BACKEND_F_SUSPEND on it; the transport opens
// and drives it (IOTLB without IOTLB_PERSIST: the arena is mapped again after each reset), and a
// stop — automatic or named — is refused with E_STATE_UNSUPPORTED and a hint naming the feature,
// while --mechanism quiesce still stops it.
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const why = vmUnavailable();
t.test('vhost-vdpa on a parent without SUSPEND (VDUSE, Linux 6.12)', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-vduse.js', { kernelArgs: ['uvirtio.vduse=1'] });
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true }));
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  const open = resultsOf(run, 'open')[0];
  t.match(open, { deviceType: 2, phase: 'live', capacity: 16384, mechanisms: ['backend', 'quiesce'] }, 'BlkDriver opens the VDUSE blk device (DRIVER_OK)');
  const offered = BigInt(String(open?.offered ?? '0'));
  t.equal(offered & (1n << 4n), 0n, 'no VHOST_BACKEND_F_SUSPEND offered');
  t.equal(offered & (1n << 8n), 0n, 'no VHOST_BACKEND_F_IOTLB_PERSIST offered (the reset path maps the arena again)');
  for (const check of ['stop-auto', 'stop-backend']) {
    t.match(resultsOf(run, check)[0], { threw: true, code: 'E_STATE_UNSUPPORTED', hint: /VHOST_BACKEND_F_SUSPEND.*quiesce/ }, `${check}: E_STATE_UNSUPPORTED, hint names the feature and quiesce`);
  }
  t.match(resultsOf(run, 'stop-quiesce')[0], { ok: true, mechanism: 'quiesce', phase: 'stopped' }, '--mechanism quiesce still stops it');
});

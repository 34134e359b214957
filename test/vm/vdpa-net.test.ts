// VM tier, vdpa profile: NetDriver over vhost-vdpa: on the kernel's vdpa_sim_net, which loops each
// transmitted frame back into its receive queue (test/vm/guest/vdpa-net.ts). Sequence-numbered,
// checksummed frames: each must arrive exactly once — plain, and across stop → snapshot file →
// reinit on the same device, stop → resume, and a move onto a second device sharing the memory.
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const why = vmUnavailable();
t.test('NetDriver over vhost-vdpa: (vdpa_sim_net loopback, Linux 6.12)', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-net.js');
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true }));
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');

  const exactlyOnce = { duplicated: 0, missing: 0, corrupted: 0 };
  t.match(resultsOf(run, 'loop')[0], { ok: true, deviceType: 1, numQueues: 3, mac: '525400560001', sent: 200, once: 200, ...exactlyOnce },
    'net0 (rx, tx, ctrl; its MAC from the configuration): 200 frames looped back, each exactly once');
  const same = resultsOf(run, 'same')[0];
  t.match(same, { ok: true, mechanism: 'backend', sent: 300, once: 300, ...exactlyOnce },
    'stop → snapshot file → reinit on net0 midway: 300 frames, each exactly once');
  const rx = (same?.queues as { index: number; inFlight: number }[] | undefined)?.find((q) => q.index === 0);
  t.ok(Number(rx?.inFlight) > 0, `the receive queue's posted buffers (${String(rx?.inFlight)}) were carried across the reinit`);
  t.match(resultsOf(run, 'resume')[0], { ok: true, mechanism: 'backend', phase: 'live', sent: 300, once: 300, ...exactlyOnce },
    'stop → resume (VHOST_VDPA_RESUME) midway: each frame exactly once');
  t.match(resultsOf(run, 'second')[0], { ok: true, mechanism: 'backend', now: /vhost-vdpa-3$/, sent: 300, once: 300, ...exactlyOnce },
    'moved onto net1 midway (same memory, its own IOTLB): each frame exactly once');
});

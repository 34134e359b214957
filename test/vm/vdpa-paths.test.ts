// VM tier, vdpa profile booted with vdpa_sim.use_va=0 vdpa_sim.batch_mapping=0
// vdpa_sim_blk.shared_backend=1 (test/vm/guest/vdpa-paths.ts): the IOTLB's pinned-page path
// (vhost_vdpa_pa_map, bounded by RLIMIT_MEMLOCK) with per-update dma_map. An arena beyond the
// locked-memory limit is an IOTLB failure (E_VDPA_IOTLB, with a hint naming the limit); a small one
// carries blk I/O and a stop/reinit; with one RAM disk behind blk0 and blk1, a rehearsal moving
// between them every cycle does each request exactly once.
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const why = vmUnavailable();
t.test('vhost-vdpa on the pinned IOTLB path, blk0 ⇄ blk1 on one RAM disk (Linux 6.12)', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-paths.js',
    { timeoutSec: 400, kernelArgs: ['vdpa_sim.use_va=0', 'vdpa_sim.batch_mapping=0', 'vdpa_sim_blk.shared_backend=1'] });
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true }));
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  t.same(resultsOf(run, 'params')[0], { check: 'params', useVa: 'N', batch: '0', shared: 'Y' }, 'the module parameters reached the modules');
  t.match(resultsOf(run, 'iotlb-memlock')[0], { threw: true, code: 'E_VDPA_IOTLB', message: /UPDATE iova 0x100000000 size 0x4000000/, hint: /ulimit -l/ },
    'the 64 MiB arena beyond the 8 MiB locked-memory limit: the IOTLB refuses it at open, E_VDPA_IOTLB');
  t.match(resultsOf(run, 'io')[0], { ok: true, readBack: true }, '?arena=2: blk I/O through pinned pages');
  const same = resultsOf(run, 'same')[0];
  t.match(same, { ok: true, mechanism: 'backend', intact: 48 }, 'stop → snapshot → reinit on the same device: 48 writes intact');
  t.ok(Number(same?.inFlightAtStop) > 0, `with ${String(same?.inFlightAtStop)} in flight at the stop`);
  const rehearsal = resultsOf(run, 'rehearse-to')[0];
  if (rehearsal?.status !== 0) t.comment(`rehearse: ${JSON.stringify(rehearsal)}`);
  t.match(rehearsal, { status: 0, json: { ok: true, mechanism: 'backend', cycles: 6, requests: { lost: 0, duplicated: 0, corrupted: 0 } } },
    'rehearse blk0 ⇄ blk1 (6 moves, one RAM disk): every request exactly once');
});

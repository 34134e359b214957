// VM tier, vdpa profile: BlkDriver over vhost-vdpa: on the kernel's vdpa_sim_blk
// (test/vm/guest/vdpa-blk.ts) — checksummed I/O with call-eventfd interrupts and polling; stop
// (VHOST_VDPA_SUSPEND + VHOST_GET_VRING_BASE) → snapshot file → reinit on the same device and onto
// a second one with requests in flight, each write done exactly once; resume; and the refusal of a
// stop when SUSPEND is not negotiated.
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

/** include/uapi/linux/vhost_types.h VHOST_BACKEND_F_* bit numbers. */
const F = { IOTLB_MSG_V2: 1n, IOTLB_BATCH: 2n, SUSPEND: 4n, RESUME: 5n, IOTLB_PERSIST: 8n };

const why = vmUnavailable();
t.test('BlkDriver over vhost-vdpa: (vdpa_sim_blk, Linux 6.12)', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-blk.js');
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true }));
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');

  const info = resultsOf(run, 'info')[0];
  t.match(info, { ok: true, deviceType: 2, numQueues: 1, layout: 'split', capacity: 262144, mechanisms: ['backend', 'quiesce'] },
    'a virtio-blk device with one queue, 128 MiB, offering the backend (SUSPEND + VRING_BASE) mechanism');
  const negotiated = BigInt(String(info?.backendFeatures ?? '0'));
  for (const [name, b] of Object.entries(F)) t.ok(negotiated & (1n << b), `backend feature ${name} negotiated (0x${negotiated.toString(16)})`);

  t.match(resultsOf(run, 'io'), [
    { ok: true, mode: 'msix', interrupts: 'msix', readBack: true },
    { ok: true, mode: 'poll', interrupts: 'poll', readBack: true },
  ], 'call-eventfd interrupts and polling both write 64 sectors and read them back');

  const same = resultsOf(run, 'same')[0];
  t.match(same, { ok: true, mechanism: 'backend', phase: 'live', written: 96, completedOnce: 96, intact: 96 },
    'stop → snapshot file → reinit on the same device: each of 96 numbered writes completed once and is on the disk');
  t.ok(Number(same?.inFlightAtStop) > 0, `the stop came with ${String(same?.inFlightAtStop)} requests in flight`);
  t.match(resultsOf(run, 'resume')[0], { ok: true, mechanism: 'backend', phase: 'live', written: 64, completedOnce: 64, intact: 64 },
    'stop → resume (VHOST_VDPA_RESUME): every write completed once and is on the disk');

  const second = resultsOf(run, 'second')[0];
  t.match(second, { ok: true, mechanism: 'backend', now: /vhost-vdpa-1$/, written: 120, completedOnce: 120, onBoth: 0, onEither: 120 },
    'reinit onto blk1 (same memory, its own IOTLB): each of 120 writes landed on exactly one of the two RAM disks');
  t.ok(Number(second?.onTarget) > 0 && Number(second?.onSource) > 0, `writes on both sides of the move (source ${String(second?.onSource)}, target ${String(second?.onTarget)})`);

  t.match(resultsOf(run, 'nosuspend')[0], { threw: true, code: 'E_STATE_UNSUPPORTED', hint: /VHOST_BACKEND_F_SUSPEND/ },
    'without SUSPEND negotiated, stop({ mechanism: backend }) is refused with E_STATE_UNSUPPORTED and a hint naming the feature');
});

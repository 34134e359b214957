// VM tier, viommu profile: VFIO type1 behind QEMU's intel-iommu (scripts/vm, docs/test-vm.md).
import fs from 'node:fs';
import t from 'tap';
import { checkProbe } from './vfio-checks.js';
import { runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const why = vmUnavailable();
t.test('VFIO in the test VM (viommu: intel-iommu, type1v2)', prerequisite(why), async (t) => {
  const run = await runInVm('viommu', 'node dist/test/vm/guest/vfio-probe.js');
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  if (run.status !== 0) t.comment(run.output + run.stderr);
  checkProbe(t, run, 'viommu');
  fs.rmSync(run.workDir, { recursive: true, force: true });
});

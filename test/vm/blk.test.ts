// VM tier: virtio-blk over VFIO end to end (VfioPciFunction → VirtioPciTransport → BlkDriver), in
// both IOMMU profiles; the written sectors are checked again in the disk image after the VM exits.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FIRST_SECTOR, pattern, SECTORS } from './guest/blk-pattern.js';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

/** scripts/vm/qemu.mjs: blk0.img behind 0000:01:00.0 (split ring), blk1.img behind 0000:02:00.0 (packed). */
const DISKS = [
  { bdf: '0000:01:00.0', image: 'blk0.img', packed: false },
  { bdf: '0000:02:00.0', image: 'blk1.img', packed: true },
];

const why = vmUnavailable();
for (const profile of ['viommu', 'noiommu'] as const) {
  t.test(`virtio-blk through VFIO (${profile})`, prerequisite(why), async (t) => {
    const run = await runInVm(profile, 'node dist/test/vm/guest/blk-io.js');
    if (run.status !== 0) t.comment(run.output + run.stderr);
    t.equal(run.status, 0, 'the guest program exits 0');
    t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
    for (const [n, d] of DISKS.entries()) {
      const r = resultsOf(run, 'blk').find((x) => x.bdf === d.bdf);
      t.match(r, { ok: true, readBack: true, capacitySectors: 32768, interrupts: 'msix', packed: d.packed },
        `${d.bdf}: write, then read back the same bytes, with MSI-X completions`);
      const image = fs.readFileSync(path.join(run.workDir, d.image));
      const onDisk = image.subarray(FIRST_SECTOR * 512, (FIRST_SECTOR + SECTORS) * 512);
      t.ok(Buffer.from(pattern(n, SECTORS * 512)).equals(onDisk), `${d.image}: the bytes are in the disk image after the VM exits`);
    }
    fs.rmSync(run.workDir, { recursive: true, force: true });
  });
}

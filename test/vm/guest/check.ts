// Runs inside the test VM (viommu or noiommu, plus a virtio-rng: test/vm/vm-run.ts rngArgs):
// `uvirtio check --json --junit FILE` on every virtio function bound to vfio-pci — QEMU's
// virtio-blk (split, packed), virtio-net (split, packed), virtio-rng — with a scratch sector on
// each blk disk, after filling the disk's first sectors with a pattern (check-disk.ts) so that the
// host can tell from the image that nothing else was written. Each run is reported with its exit
// status, stdout, the JUnit file and its wall time. The host side is test/vm/check.test.ts.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { BlkDriver } from '../../../drivers/blk/index.js';
import { VirtioPciTransport } from '../../../lib/transport/pci/transport.js';
import { DeviceType } from '../../../lib/spec/index.js';
import { listVirtioDevices, VfioPciFunction } from '../../../lib/vfio/index.js';
import { FILLED_SECTORS, SCRATCH_SECTOR, fill } from './check-disk.js';
import { report, step } from './report.js';

/** Bound on one `uvirtio check` run under TCG (it is killed after it; the host asserts a smaller one). */
const RUN_BOUND_MS = 150_000;
/** scripts/vm/qemu.mjs: the disk image behind each blk function. */
const IMAGES: Record<string, number> = { '0000:01:00.0': 0, '0000:02:00.0': 1 };

async function fillDisk(bdf: string, n: number): Promise<Record<string, unknown>> {
  const fn = VfioPciFunction.open(bdf);
  const blk = await BlkDriver.open(new VirtioPciTransport(fn), { depth: 4, maxTransfer: 16 * 1024 });
  try {
    await blk.write(0, fill(n));
    await blk.flush().catch(() => undefined);
    const back = await blk.read(0, FILLED_SECTORS);
    return { bdf, n, readBack: Buffer.from(back).equals(Buffer.from(fill(n))) };
  } finally {
    await blk.close();
    fn.close();
  }
}

function check(bdf: string, type: string, blk: boolean): void {
  const junit = `/tmp/check-${bdf.replace(/:/g, '_')}.xml`;
  fs.rmSync(junit, { force: true });
  const args = ['bin/uvirtio.js', 'check', `vfio:${bdf}`, '--json', '--junit', junit, ...(blk ? ['--scratch-sector', String(SCRATCH_SECTOR)] : [])];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: RUN_BOUND_MS, killSignal: 'SIGKILL' });
  report('check', {
    bdf, type, address: `vfio:${bdf}`, status: r.status ?? (r.signal ? 128 + 9 : null), stdout: r.stdout, stderr: r.stderr.slice(-2000),
    junit: fs.existsSync(junit) ? fs.readFileSync(junit, 'utf8') : null, ms: Date.now() - t0,
  });
}

async function main(): Promise<void> {
  const devices = listVirtioDevices().filter((d) => d.vfioUsable);
  for (const d of devices.filter((x) => x.virtioType === DeviceType.BLK && x.bdf in IMAGES)) {
    await step('fill', () => fillDisk(d.bdf, IMAGES[d.bdf]!));
  }
  for (const d of devices) check(d.bdf, d.typeName, d.virtioType === DeviceType.BLK);
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

// Runs inside the test VM: drives each virtio-blk function through VfioPciFunction →
// VirtioPciTransport → BlkDriver, writes a pattern, reads it back and reports; the host then checks
// the same bytes in the disk image after the VM has exited (test/vm/blk.test.ts).

import { BlkDriver } from '../../../drivers/blk/index.js';
import { VirtioPciTransport } from '../../../lib/transport/pci/transport.js';
import { DeviceType } from '../../../lib/spec/index.js';
import { listVirtioDevices, VfioPciFunction } from '../../../lib/vfio/index.js';
import { FIRST_SECTOR, pattern, SECTORS } from './blk-pattern.js';
import { report, step } from './report.js';

async function main(): Promise<void> {
  const blks = listVirtioDevices().filter((d) => d.virtioType === DeviceType.BLK && d.vfioUsable);
  for (const [n, d] of blks.entries()) {
    await step('blk', async () => {
      const fn = VfioPciFunction.open(d.bdf);
      const blk = await BlkDriver.open(new VirtioPciTransport(fn), { depth: 4, maxTransfer: 16 * 1024 });
      try {
        const data = pattern(n, SECTORS * 512);
        await blk.write(FIRST_SECTOR, data);
        await blk.flush().catch(() => undefined);
        const back = await blk.read(FIRST_SECTOR, SECTORS);
        return {
          bdf: d.bdf, n, capacitySectors: blk.capacitySectors, interrupts: blk.device.interruptMode,
          packed: blk.device.layout === 'packed', features: blk.device.features,
          readBack: back.length === data.length && back.every((b, i) => b === data[i]),
        };
      } finally {
        await blk.close();
        fn.close();
      }
    });
  }
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

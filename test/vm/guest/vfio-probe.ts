// Runs inside the test VM (scripts/vm/run.mjs) with every virtio function bound to vfio-pci:
// opens each through VfioPciFunction and reports what it finds; then the error paths.
// The host side is test/vm/vfio.test.ts.

import { setTimeout as delay } from 'node:timers/promises';
import { PciConfig, walkCapabilities } from '../../../lib/pci/config.js';
import { CommonCfg, PCI_CAP_ID_MSIX, PCI_CAP_ID_VENDOR, PciCapField, PciCapType } from '../../../lib/spec/index.js';
import { bindVfio, listVirtioDevices, unbindVfio, VfioPciFunction } from '../../../lib/vfio/index.js';
import { expectError, report, step } from './report.js';

function virtioCaps(fn: VfioPciFunction): { type: number; bar: number; offset: number; length: number }[] {
  return walkCapabilities(fn).filter((c) => c.id === PCI_CAP_ID_VENDOR).map((c) => ({
    type: fn.configRead8(c.offset + PciCapField.CFG_TYPE),
    bar: fn.configRead8(c.offset + PciCapField.BAR),
    offset: fn.configRead32(c.offset + PciCapField.OFFSET),
    length: fn.configRead32(c.offset + PciCapField.LENGTH),
  }));
}

async function probe(bdf: string): Promise<void> {
  const fn = VfioPciFunction.open(bdf);
  try {
    await step('config', () => ({
      bdf, iommu: fn.iommu,
      vendor: fn.configRead16(PciConfig.VENDOR_ID), device: fn.configRead16(PciConfig.DEVICE_ID),
      capIds: walkCapabilities(fn).map((c) => c.id),
    }));
    await step('common-cfg', () => {
      const common = virtioCaps(fn).find((c) => c.type === PciCapType.COMMON);
      if (!common) throw new Error('no common configuration capability');
      const bar = fn.bar(common.bar);
      const at = (off: number): number => common.offset + off;
      bar.write32(at(CommonCfg.DEVICE_FEATURE_SELECT), 0);
      const lo = bar.read32(at(CommonCfg.DEVICE_FEATURE));
      bar.write32(at(CommonCfg.DEVICE_FEATURE_SELECT), 1);
      const hi = bar.read32(at(CommonCfg.DEVICE_FEATURE));
      return {
        bdf, bar: common.bar, mapped: fn.barIsMapped(common.bar), caps: virtioCaps(fn).map((c) => c.type),
        numQueues: bar.read16(at(CommonCfg.NUM_QUEUES)), deviceFeatures: (BigInt(hi) << 32n) | BigInt(lo),
        hasMsixCap: walkCapabilities(fn).some((c) => c.id === PCI_CAP_ID_MSIX),
      };
    });
    await step('dma', () => {
      const small = fn.dma.alloc(512, 64);
      const big = fn.dma.alloc(64 * 1024, 4096);
      small.bytes.fill(0xa5);
      big.bytes[big.size - 1] = 0x5a;
      const found = fn.dma.lookup(big.iova + 100n, 16) === big && fn.dma.lookup(small.iova + 1000n, 16) === undefined;
      const zeroed = big.bytes.slice(0, big.size - 1).every((b) => b === 0);
      const regions = fn.dma.count;
      fn.dma.free(small);
      fn.dma.free(big);
      return { bdf, kind: fn.dma.kind, small: small.iova, big: big.iova, bigAligned: big.iova % 4096n === 0n,
        distinct: small.iova !== big.iova, found, zeroed, regions, after: fn.dma.count };
    });
    await step('msix', async () => {
      const fired: number[] = [];
      const n = fn.msix.enable(fn.msix.tableSize, (v) => fired.push(v));
      for (let v = 0; v < n; v++) fn.msix.trigger(v);
      for (let t = 0; t < 200 && new Set(fired).size < n; t++) await delay(10);
      fn.msix.disable();
      return { bdf, tableSize: fn.msix.tableSize, enabled: n, fired: [...new Set(fired)].sort((a, b) => a - b) };
    });
    await step('reset', () => {
      fn.reset();
      return { bdf, vendorAfter: fn.configRead16(PciConfig.VENDOR_ID) };
    });
  } finally {
    fn.close();
  }
  expectError('after-close', () => fn.configRead16(PciConfig.VENDOR_ID));
}

async function main(): Promise<void> {
  const devices = listVirtioDevices();
  report('list', { devices });
  for (const d of devices.filter((x) => x.vfioUsable)) await probe(d.bdf);

  // Bad input: each error its own code.
  expectError('malformed-bdf', () => VfioPciFunction.open('00:02'));
  expectError('unknown-bdf', () => VfioPciFunction.open('0000:00:1e.0'));
  expectError('not-virtio', () => VfioPciFunction.open('0000:00:1f.0'));
  const victim = devices[devices.length - 1]!.bdf;
  await step('unbind', () => unbindVfio(victim));
  expectError('not-bound', () => VfioPciFunction.open(victim));
  await step('rebind', () => bindVfio(victim));
  await step('open-after-rebind', () => {
    const fn = VfioPciFunction.open(victim);
    fn.close();
    return { bdf: victim };
  });
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

// Assertions on test/vm/guest/vfio-probe.js's results, shared by the viommu and noiommu profiles.

import type { Test } from 'tap';
import { resultsOf, type VmRun } from './vm-run.js';

/** The functions scripts/vm/qemu.mjs creates: BDF → virtio type, queues QEMU gives it, MSI-X vectors. */
export const EXPECTED = [
  { bdf: '0000:01:00.0', type: 2, device: 0x1042, queues: 1, vectors: 2, packed: false },
  { bdf: '0000:02:00.0', type: 2, device: 0x1042, queues: 2, vectors: 3, packed: true },
  { bdf: '0000:03:00.0', type: 1, device: 0x1041, queues: 3, vectors: 4, packed: false },
  { bdf: '0000:04:00.0', type: 1, device: 0x1041, queues: 3, vectors: 4, packed: true },
];

const RING_PACKED = 1n << 34n;
const VERSION_1 = 1n << 32n;
const ACCESS_PLATFORM = 1n << 33n;

export function checkProbe(t: Test, run: VmRun, profile: 'viommu' | 'noiommu'): void {
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');

  const list = resultsOf(run, 'list')[0]?.devices as { bdf: string; virtioType: number; driver: string; vfioUsable: boolean; noIommu: boolean }[] | undefined;
  t.same(list?.map((d) => [d.bdf, d.virtioType, d.driver, d.vfioUsable, d.noIommu]),
    EXPECTED.map((e) => [e.bdf, e.type, 'vfio-pci', true, profile === 'noiommu']), 'sysfs lists the four virtio functions, on vfio-pci');

  for (const e of EXPECTED) {
    t.test(`${e.bdf} (virtio type ${e.type}${e.packed ? ', packed' : ''})`, async (t) => {
      const by = (check: string): Record<string, unknown> | undefined => resultsOf(run, check).find((r) => r.bdf === e.bdf);
      const config = by('config');
      t.match(config, { ok: true, vendor: 0x1af4, device: e.device, iommu: profile === 'viommu' ? 'type1v2' : 'noiommu' }, 'config space ids');
      t.ok((config?.capIds as number[]).includes(0x11), 'capability walk finds MSI-X');
      t.ok((config?.capIds as number[]).filter((id) => id === 9).length >= 4, 'capability walk finds the virtio vendor capabilities');

      const common = by('common-cfg');
      t.match(common, { ok: true, bar: 4, mapped: true, numQueues: e.queues }, 'BAR 4 is mmap\'ed; num_queues as configured');
      t.same([...(common?.caps as number[])].sort(), [1, 2, 3, 4, 5], 'common, notify, ISR, device and PCI-cfg capabilities');
      const features = BigInt(common?.deviceFeatures as string);
      t.ok(features & VERSION_1, 'device_feature offers VERSION_1');
      t.equal((features & RING_PACKED) !== 0n, e.packed, 'RING_PACKED offered exactly by the packed=on functions');
      t.equal((features & ACCESS_PLATFORM) !== 0n, profile === 'viommu', 'ACCESS_PLATFORM offered behind the vIOMMU only');

      const dma = by('dma');
      t.match(dma, { ok: true, kind: profile === 'viommu' ? 'type1' : 'noiommu', bigAligned: true, distinct: true, found: true, zeroed: true, regions: 2, after: 0 },
        'DMA regions: allocated, zeroed, aligned, found by IOVA, freed');
      if (profile === 'viommu') t.equal(dma?.small, '0x100000', 'type1 IOVAs start at the allocator floor (1 MiB)');

      t.match(by('msix'), { ok: true, tableSize: e.vectors, enabled: e.vectors }, 'MSI-X vectors enabled');
      t.same(by('msix')?.fired, [...Array(e.vectors).keys()], 'each vector\'s eventfd reaches the handler');
      t.match(by('reset'), { ok: true, vendorAfter: 0x1af4 }, 'VFIO_DEVICE_RESET');
    });
  }

  t.match(resultsOf(run, 'after-close'), EXPECTED.map(() => ({ threw: true, code: 'E_CLOSED' })), 'a closed function refuses access');
  t.match(resultsOf(run, 'malformed-bdf')[0], { threw: true, code: 'E_BAD_ADDRESS' }, 'malformed BDF');
  t.match(resultsOf(run, 'unknown-bdf')[0], { threw: true, code: 'E_NO_DEVICE' }, 'unknown BDF');
  t.match(resultsOf(run, 'not-virtio')[0], { threw: true, code: 'E_NOT_VIRTIO' }, 'a non-virtio function');
  t.match(resultsOf(run, 'unbind')[0], { ok: true, driver: null }, 'unbind gives the function back (to no driver here)');
  t.match(resultsOf(run, 'not-bound')[0], { threw: true, code: 'E_NOT_BOUND', hint: /uvirtio bind 0000:04:00\.0/ }, 'a function not on vfio-pci');
  t.match(resultsOf(run, 'rebind')[0], { ok: true }, 'bind gives it to vfio-pci again');
  t.match(resultsOf(run, 'open-after-rebind')[0], { ok: true }, 'and it opens');
}

// A driver of your own (README "Using it as a library") that submits a chain with a segment outside
// its device's DMA memory — an IOVA it made up, a region it already freed, or a length that runs
// past the end of its region — is a mistake of the caller's that the SDK can see: every byte the
// device may touch must be in device.dma (DmaAllocator.lookup answers for it; readDma checks its
// region that way). Today RequestQueue.submit checks a segment's type and length but not where it
// points: the chain goes into the ring, the (strict reference) device refuses it
// ('buffer-address-invalid', §6.1) and sets DEVICE_NEEDS_RESET, and the caller is told
// E_DEVICE_NEEDS_RESET, "sim:blk set DEVICE_NEEDS_RESET: it hit an error it cannot recover
// from" — the caller's mistake blamed on the device, the whole device reset, every other request
// in flight rejected with it and every later one refused until recover(). On VFIO without an IOMMU
// the same chain is a DMA to whatever physical address the caller wrote. What should happen: the
// request is refused at submit with a caller's code (E_BAD_CHAIN or E_INVALID_ARGUMENT) naming the
// segment, nothing reaches the ring, and the device and its other requests go on.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { Segment } from '../../lib/spec/ring.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import { settledCode } from '../support/codes.js';

/** A blk FLUSH request header in a fresh region: 16 bytes readable, the status byte at 16. */
function flushHeader(dev: VirtioDevice): DmaRegion {
  const b = dev.dma.alloc(4096);
  new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 4 /* VIRTIO_BLK_T_FLUSH */, true);
  return b;
}

const cases: [string, (b: DmaRegion, dev: VirtioDevice) => [Segment[], Segment[]]][] = [
  ['an IOVA the driver never allocated', (b) => [[{ addr: 0xdead_0000n, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]]],
  ['a writable segment running past the end of its region', (b) => [[{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 8192 }]]],
  ['a region already freed', (_b, dev) => {
    const gone = flushHeader(dev);
    dev.dma.free(gone);
    return [[{ addr: gone.iova, len: 16 }], [{ addr: gone.iova + 16n, len: 1 }]];
  }],
];

for (const layout of ['split', 'packed'] as const) {
  for (const [name, chain] of cases) {
    t.test(`${layout}: ${name} is the caller's mistake, refused at submit; the device goes on`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 2048 });
      const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { features: { layout } });
      t.equal(dev.layout, layout);
      const queues = new QueueSet(dev);
      t.teardown(() => queues.close());
      const rq = queues.add(0, { size: 16 });
      await dev.driverOk();
      const good = flushHeader(dev);
      const [readable, writable] = chain(good, dev);
      const code = await settledCode(rq.submit(readable, writable), 5000);
      t.ok(code === 'E_BAD_CHAIN' || code === 'E_INVALID_ARGUMENT', `refused with a caller's code (got ${code})`);
      t.equal(dev.phase, 'live', 'the device was not failed by a request the SDK could have refused');
      t.same(sim.violations.map((v) => v.id), [], 'the device never saw the bad address');
      t.equal(await settledCode(rq.submit([{ addr: good.iova, len: 16 }], [{ addr: good.iova + 16n, len: 1 }]), 5000), 'ok',
        'the next good request completes');
    });
  }
}

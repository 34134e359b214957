// The check of submit-segment-outside-dma-blames-device.test.ts on both ways a chain goes into the
// ring — direct descriptors (indirectThreshold: Infinity) and an indirect table (threshold 1) — and
// for a readable segment running past its region: refused E_BAD_CHAIN with a hint, nothing made
// available (the queue's free count unchanged), the device never sees it.
import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { settledCode } from '../support/codes.js';

for (const layout of ['split', 'packed'] as const) {
  for (const [how, indirectThreshold] of [['direct', Infinity], ['indirect', 1]] as const) {
    t.test(`${layout}, ${how}: a readable segment past its region's end is refused at submit`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 2048 });
      const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { features: { layout } });
      const queues = new QueueSet(dev);
      t.teardown(() => queues.close());
      const rq = queues.add(0, { size: 16, indirectThreshold });
      await dev.driverOk();
      const b = dev.dma.alloc(64);
      new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 4 /* FLUSH */, true);
      const err = await rq.submit([{ addr: b.iova + 60n, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]).then(() => undefined, (e: unknown) => e as { code?: string; hint?: string; message?: string });
      t.equal(err?.code, 'E_BAD_CHAIN');
      t.match(err?.message, /readable segment 0 at 0x[0-9a-f]+\+16 is not inside the device's DMA memory/);
      t.ok(err?.hint, 'with a hint');
      t.same(sim.violations.map((v) => v.id), [], 'the device never saw it');
      t.equal(await settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]), 5000), 'ok', 'the next good request completes');
      t.equal(dev.phase, 'live');
    });
  }
}

// dma.free() refuses (E_DMA_IN_USE) a region a chain in flight points at — but not one a request
// the SDK accepted and holds waiting for room on the ring (blk.readDma into the caller's region, a
// QueueSet submit of the caller's segments) points at: the free is accepted, and when the request
// is admitted its segments name memory that was given back. On the heap allocator the request then
// rejects E_BAD_CHAIN; on the allocators that hand freed memory out again (VFIO's, the vhost-user
// and vhost-vdpa arenas) the next alloc() gets the same IOVAs and the device writes the read's data
// into the new owner's region, and the read resolves as if nothing happened. What should happen: a
// region a pending request uses — in flight or waiting to be (for room, or held back by a stop
// until reinit) — is refused E_DMA_IN_USE, nothing
// freed, and the request completes into it as usual.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { codeOf, settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: blk.readDma waiting for room holds its target: free() refused, the read completes`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual' });
    // A 4-entry ring without indirect tables takes one 3-descriptor read at a time.
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { queueSize: 4, indirect: false, layout });
    t.teardown(() => blk.close());
    const first = settledCode(blk.read(0, 8), 5000);
    const target = blk.device.dma.alloc(4096);
    const read = settledCode(blk.readDma(8, 8, target), 5000);
    await turns(10);
    t.equal(blk.requests.vq.inFlight, 1, 'one read on the ring');
    t.equal(blk.requests.pending, 2, 'the readDma waits for room');
    t.equal(codeOf(() => blk.device.dma.free(target)), 'E_DMA_IN_USE', 'free() of the target of the waiting readDma is refused');
    for (let i = 0; i < 10 && sim.held + blk.requests.pending > 0; i++) {
      sim.completeNow();
      await turns(5);
    }
    t.equal(await first, 'ok');
    t.equal(await read, 'ok', 'the readDma completes into its target');
  });
}

t.test('QueueSet: a submit waiting for room holds its segments: free() refused', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { features: { indirect: false } });
  const queues = new QueueSet(dev);
  t.teardown(() => queues.close());
  const rq = queues.add(0, { size: 2 });
  await dev.driverOk();
  const bufs = [dev.dma.alloc(4096), dev.dma.alloc(4096)];
  for (const b of bufs) new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 4 /* FLUSH */, true);
  const done = bufs.map((b) => settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]), 5000));
  await turns(10);
  t.equal(rq.vq.inFlight, 1, 'one request on the 2-entry ring');
  t.equal(codeOf(() => dev.dma.free(bufs[1]!)), 'E_DMA_IN_USE', 'free() of the waiting request\'s buffer is refused');
  for (let i = 0; i < 10 && rq.pending > 0; i++) {
    sim.completeNow();
    await turns(5);
  }
  t.same(await Promise.all(done), ['ok', 'ok'], 'both requests complete');
});

t.test('a readDma held back by a stop (it waits for reinit) holds its target: free() refused, the read completes after reinit', async (t) => {
  const sim = createSimDevice({ type: 'blk', state: { ringState: true } });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => blk.close());
  await blk.stop({ mechanism: 'ring-state' });
  const target = blk.device.dma.alloc(4096);
  const read = settledCode(blk.readDma(0, 8, target), 5000);
  await turns(5);
  t.equal(blk.requests.pending, 1, 'the readDma waits for the device to come back');
  t.equal(codeOf(() => blk.device.dma.free(target)), 'E_DMA_IN_USE', 'free() of its target is refused');
  await blk.reinit(blk.snapshot());
  t.equal(await read, 'ok', 'the readDma completes into its target after reinit');
});

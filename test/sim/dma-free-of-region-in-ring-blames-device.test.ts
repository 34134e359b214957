// dma.free() of a region a chain in a ring still points at (a request in flight) — the same
// caller's mistake as submitting a freed region, which submit refuses E_BAD_CHAIN, made a moment
// later. It used to be accepted: when the device came to write the buffer its DMA fell outside the
// driver's memory, it set DEVICE_NEEDS_RESET, and the request was rejected E_DEVICE_NEEDS_RESET —
// the caller's mistake blamed on the device, the whole device down (every other request refused
// until recover()). On VFIO the IOVA was unmapped under the device, and a region reallocated at
// that IOVA would have been written by the device for the old request.
//
// Now free() is refused DmaError E_DMA_IN_USE naming the queue and the chain, nothing freed, and
// the request completes into the buffer; once it has, free() takes the region. The queue's check
// runs at free() time (a scan of the chains in flight), so add() pays nothing for it
// (bench/README.md, "What two safety checks cost the ring"). Both layouts, direct descriptors and
// an indirect table; the queue-level matrix (ring, tables, partial overlap, out-of-order packed
// completion, a scribbling device) is test/unit/dma-free-in-use.test.ts.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

t.test('free() of a buffer a request in flight uses: refused, or the device is not blamed', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { requestTimeoutMs: 500 });
  const queues = new QueueSet(dev);
  t.teardown(() => queues.close());
  const rq = queues.add(0, { size: 16 });
  await dev.driverOk();
  const b = dev.dma.alloc(4096); // a blk read of sector 0: header, 512 data bytes, status
  const p = settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 512 }, { addr: b.iova + 528n, len: 1 }]), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
  t.equal(sim.held, 1, 'the device holds the request');
  const freed = await codeOfAsync(() => dev.dma.free(b));
  sim.completeNow();
  const code = await p;
  if (freed === 'no error') {
    t.notOk(code.startsWith('E_DEVICE'), `free() accepted: the request is not blamed on the device (got ${code})`);
    t.equal(dev.phase, 'live', 'and the device stays live');
  } else {
    t.ok(['E_BAD_STATE', 'E_INVALID_ARGUMENT', 'E_DMA_IN_USE'].includes(freed), `free() refused with a caller's code (got ${freed})`);
    t.equal(code, 'ok', 'the request completes into the buffer still held');
  }
});

for (const layout of ['split', 'packed'] as const) {
  for (const [how, indirectThreshold] of [['direct', Infinity], ['indirect', 1]] as const) {
    t.test(`${layout}, ${how}: free() of a buffer in flight is refused E_DMA_IN_USE, the request completes into it, then free() takes it`, async (t) => {
      const sim = createSimDevice({ type: 'blk', completion: 'manual' });
      const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { requestTimeoutMs: 2000, features: { layout } });
      const queues = new QueueSet(dev);
      t.teardown(() => queues.close());
      const rq = queues.add(0, { size: 16, indirectThreshold });
      await dev.driverOk();
      sim.disk.fill(0x5a, 0, 512);
      const b = dev.dma.alloc(4096);
      // Only part of the region is in the chain: the data buffer at 1024..1535.
      const p = settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 1024n, len: 512 }, { addr: b.iova + 16n, len: 1 }]), 5000);
      for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
      t.equal(sim.held, 1, 'the device holds the request');
      let err: { code?: string; message?: string; hint?: string } | undefined;
      try {
        dev.dma.free(b);
      } catch (e) {
        err = e as typeof err;
      }
      t.equal(err?.code, 'E_DMA_IN_USE', 'refused');
      t.match(err?.message, /chain \d+ in flight on queue 0 uses 0x[0-9a-f]+\+(16|512|1) of it/, 'naming the queue and the chain');
      t.match(err?.hint, /wait for the request to complete/);
      t.equal(dev.dma.lookup(b.iova, 4096), b, 'nothing freed');
      t.equal(await codeOfAsync(() => dev.dma.free({ iova: b.iova, size: b.size, bytes: b.bytes })), 'E_DMA_IN_USE', 'an exact copy of the region too');
      sim.completeNow();
      t.equal(await p, 'ok', 'the request completes');
      t.equal(b.bytes[1024], 0x5a, 'into the buffer still held');
      t.equal(dev.phase, 'live');
      t.equal(await codeOfAsync(() => dev.dma.free(b)), 'no error', 'once used, free() takes it');
    });
  }
}

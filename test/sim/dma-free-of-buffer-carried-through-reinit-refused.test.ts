// A reinit() that restarts the rings at index 0 (quiesce, suspend) resets the device: a chain it
// held in flight (a receive buffer, drains: false) is forgotten by its ring and carried by the
// driver from then until the new device's DRIVER_OK, when it is posted again. While carried, it is
// on no ring, yet its buffer is still the request's: dma.free() of it is refused E_DMA_IN_USE (the
// guard asks VirtioDevice.carriedTokens), the request settles once, with the data the device
// read, and then the buffer can be freed. The same through a reinit attempt the device refused (the
// chains stay carried for the next attempt), and through a recover() under way (the chain kept for
// it since the failure). The window is the transport's flush(), which reinit() and recover() await
// after FEATURES_OK and after DRIVER_OK: vhost-user and vhost-vdpa wait there for their back-end;
// here a test holds it.

import t, { type Test } from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { DeviceSnapshot } from '../../lib/virtio/snapshot/format.js';
import { BlkReq } from '../../lib/spec/index.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { DeviceError } from '../../lib/errors.js';
import { codeOfAsync, settledCode } from '../support/codes.js';
import { heldRequest } from '../support/held-request.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A transport over the reference device whose flush() the test controls: while `holding`, each
 * call waits until release() (or fails with refuse()); `waiting` is how many calls wait now.
 */
function flushGate() {
  let pending: { resolve(): void; reject(e: Error): void }[] = [];
  const gate = {
    holding: false,
    calls: 0,
    get waiting(): number {
      return pending.length;
    },
    wrap(base: VirtioPciTransport): VirtioPciTransport {
      const gated = Object.create(base) as VirtioPciTransport & { flush(ms: number): Promise<void> };
      gated.flush = () => {
        gate.calls++;
        return gate.holding ? new Promise<void>((resolve, reject) => pending.push({ resolve, reject })) : Promise.resolve();
      };
      return gated;
    },
    release(): void {
      const now = pending;
      pending = [];
      for (const p of now) p.resolve();
    },
    refuse(): void {
      const now = pending;
      pending = [];
      for (const p of now) p.reject(new DeviceError('E_FEATURES_NOT_OK', 'the back-end refused (test)'));
    },
    /** Waits (at most 200 turns) until a flush() waits. */
    async held(): Promise<boolean> {
      for (let i = 0; i < 200 && pending.length === 0; i++) await turn();
      return pending.length > 0;
    },
  };
  return gate;
}

/**
 * Starts a reinit() from `snapshot` with the transport's flush() held, and waits through its first
 * flush (after FEATURES_OK) into its second (after DRIVER_OK, the rings restarted at 0), asserting
 * both; the reinit is then waiting there. Resolves with `attempt`, the reinit's settled code
 * (settledCode's bound), in an object so that awaiting this does not wait for the reinit itself.
 */
async function reinitHeldAfterDriverOk(t: Test, gate: ReturnType<typeof flushGate>, queues: QueueSet, snapshot: DeviceSnapshot): Promise<{ attempt: Promise<string> }> {
  gate.holding = true;
  const attempt = settledCode(queues.reinit(snapshot));
  t.ok(await gate.held(), 'the attempt waits after FEATURES_OK');
  gate.release();
  t.ok(await gate.held(), 'and after DRIVER_OK, the rings restarted');
  return { attempt };
}

/** A held 512-byte read of sector 0 on a drains: false queue, with a pattern on the disk to read. */
async function setUp(t: Test, layout: 'split' | 'packed') {
  const gate = flushGate();
  const held = await heldRequest(t, { layout, queue: { drains: false }, read: true, wrap: (b) => gate.wrap(b) });
  const pattern = Uint8Array.from({ length: 512 }, (_, i) => (i * 7 + 3) & 0xff);
  held.sim.disk.set(pattern, 0);
  held.buffer.bytes[528] = 0xff; // the status byte: the device writes 0 (VIRTIO_BLK_S_OK) when it serves the read
  t.equal(held.sim.held, 1, 'the device holds the read');
  return { gate, pattern, ...held };
}

/** After the carried read was posted again: the device serves it once, into the buffer, and then it can be freed. */
async function completesOnceThenFrees(t: Test, h: Awaited<ReturnType<typeof setUp>>): Promise<void> {
  const { sim, dev, rq, buffer: b, settled: read, pattern } = h;
  for (let i = 0; i < 50 && sim.held < 1; i++) await turn();
  t.equal(sim.held, 1, 'the carried read was posted again and the device holds it');
  t.equal(await codeOfAsync(() => dev.dma.free(b)), 'E_DMA_IN_USE', 'free() still refused while it is in flight on the new ring');
  t.equal(sim.completeNow(), 1, 'the device serves it');
  t.equal(await read, 'ok', 'the read settles ok');
  t.equal(sim.stats.completed[0], 1, 'served once: the device used no other element on the queue');
  t.equal(rq.pending, 0, 'nothing pending on the queue');
  t.same(b.bytes.subarray(16, 528), pattern, 'the buffer holds sector 0 as the disk has it');
  t.equal(b.bytes[528], 0, 'status VIRTIO_BLK_S_OK');
  t.equal(await codeOfAsync(() => dev.dma.free(b)), 'no error', 'once it settled, free() works');
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: a chain carried through a reinit() under way: free() refused until the request settled`, async (t) => {
    const h = await setUp(t, layout);
    const { gate, dev, queues, buffer: b } = h;
    t.equal(await queues.stop(), 'quiesce', 'stopped with quiesce (the device offers no ring state): the rings restart at 0');
    const snapshot = dev.snapshot();
    t.equal(snapshot.queues[0]!.inFlight, 1, 'the snapshot counts the read in flight');

    gate.holding = true;
    gate.calls = 0;
    const reinit = settledCode(queues.reinit(snapshot));
    t.ok(await gate.held(), 'the reinit waits in its first flush (after FEATURES_OK)');
    t.equal(dev.queue(0).inFlight, 1, 'the ring still has the chain');
    t.equal(await codeOfAsync(() => dev.dma.free(b)), 'E_DMA_IN_USE', 'free() refused');
    gate.release();
    t.ok(await gate.held(), 'the reinit waits in its second flush (after DRIVER_OK)');
    t.equal(gate.calls, 2, 'the reinit\'s second flush');
    t.equal(dev.queue(0).inFlight, 0, 'the restarted ring forgot the chain');
    t.equal(dev.carriedTokens(0).length, 1, 'the driver carries it to the new device');
    t.equal(h.sim.held, 0, 'the device dropped what it held at the reset');
    let error: unknown;
    try {
      dev.dma.free(b);
    } catch (e) {
      error = e;
    }
    t.match(error, { code: 'E_DMA_IN_USE', message: /held back on queue 0 until the device is re-initialised/ }, 'free() of the carried buffer is refused, naming why');
    gate.holding = false;
    gate.release();
    t.equal(await reinit, 'ok', 'the reinit completes');
    t.equal(dev.phase, 'live');
    t.equal(dev.carriedTokens(0).length, 0, 'nothing carried any more');
    await completesOnceThenFrees(t, h);
  });

  t.test(`${layout}: a chain carried past a refused reinit attempt: free() refused until the retry's request settled`, async (t) => {
    const h = await setUp(t, layout);
    const { gate, dev, queues, buffer: b } = h;
    await queues.stop();
    const snapshot = dev.snapshot();

    const { attempt: first } = await reinitHeldAfterDriverOk(t, gate, queues, snapshot);
    gate.refuse();
    t.equal(await first, 'E_FEATURES_NOT_OK', 'the attempt is refused');
    t.equal(dev.phase, 'stopped', 'the device is stopped again, for another attempt');
    t.equal(dev.carriedTokens(0).length, 1, 'the chain is carried to the next attempt');
    t.equal(await codeOfAsync(() => dev.dma.free(b)), 'E_DMA_IN_USE', 'free() of its buffer is refused between the attempts');

    gate.holding = false;
    t.equal(await settledCode(queues.reinit(snapshot)), 'ok', 'the second attempt succeeds');
    await completesOnceThenFrees(t, h);
  });

  t.test(`${layout}: a chain kept through a recover() under way: free() refused until the request settled`, async (t) => {
    const h = await setUp(t, layout);
    const { gate, sim, dev, queues, buffer: b } = h;
    sim.injectFault({ kind: 'needs-reset' });
    for (let i = 0; i < 200 && dev.phase === 'live'; i++) await turn();
    t.equal(dev.phase, 'needs-reset', 'the device failed');
    for (let i = 0; i < 50 && sim.held > 0; i++) await turn();
    t.equal(sim.held, 0, 'the reset dropped the read: the driver keeps it for recover()');

    gate.holding = true;
    const recover = settledCode(queues.recover());
    t.ok(await gate.held(), 'recover() waits in its first flush (after FEATURES_OK)');
    t.equal(await codeOfAsync(() => dev.dma.free(b)), 'E_DMA_IN_USE', 'free() refused');
    gate.release();
    t.ok(await gate.held(), 'recover() waits in its second flush (after DRIVER_OK)');
    t.equal(dev.queue(0).inFlight, 0, 'the chain is on no ring');
    t.equal(await codeOfAsync(() => dev.dma.free(b)), 'E_DMA_IN_USE', 'free() refused');
    gate.holding = false;
    gate.release();
    t.equal(await recover, 'ok', 'recovered');
    await completesOnceThenFrees(t, h);
  });
}

// A target that writes a used element into a restarted ring (nothing is available on it yet) and
// then refuses: a retry could do that work twice, so the device fails for good and the requests are
// rejected. The chains the attempt carried (queue 0, drains: false, after a quiesce) were left out
// of that: restartRings returned only what the rings held, so their requests stayed pending, and
// their buffers unfreeable, until close(). The target completes on queue 1 (drains: true: its
// used elements count as work done). Split only: the fault (the carried chains) is the same for both
// layouts; the used ring's layout is what the test writes by hand.
t.test('split: a target that completes on a restarted ring and fails: the carried request is rejected at once, its buffer freed', async (t) => {
  const gate = flushGate();
  const sim = createSimDevice({ type: 'blk', completion: 'manual', queues: 2 });
  const dev = await VirtioDevice.open(gate.wrap(new VirtioPciTransport(sim.fn)), { features: { layout: 'split' } });
  const queues = new QueueSet(dev);
  t.teardown(() => queues.close());
  const rq = queues.add(0, { size: 16, drains: false });
  queues.add(1, { size: 16 });
  await dev.driverOk();
  const b = dev.dma.alloc(4096);
  new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, BlkReq.IN, true);
  const read = settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 512 }, { addr: b.iova + 528n, len: 1 }]));
  for (let i = 0; i < 50 && sim.held < 1; i++) await turn();
  t.equal(sim.held, 1, 'the device holds the read on queue 0');
  t.equal(await queues.stop(), 'quiesce', 'stopped with quiesce: the rings restart at 0');
  const snapshot = dev.snapshot();
  const { attempt } = await reinitHeldAfterDriverOk(t, gate, queues, snapshot);
  t.equal(dev.carriedTokens(0).length, 1, 'the read is carried');
  // struct virtq_used of queue 1 (virtio 1.2 §2.7.8): flags u16, idx u16, ring[] { id u32, len u32 }.
  t.ok(dev.dma instanceof HeapDmaAllocator, 'the rings are in heap DMA memory the test can write as the device would');
  const ring = (dev.dma as HeapDmaAllocator).view(dev.queue(1).addresses.device, 12);
  const used = new DataView(ring.buffer, ring.byteOffset, 12);
  used.setUint32(4, 0, true); // ring[0].id: descriptor 0
  used.setUint32(8, 0, true); // ring[0].len
  used.setUint16(2, 1, true); // idx: one used element
  gate.holding = false;
  gate.refuse();
  t.equal(await attempt, 'E_FEATURES_NOT_OK', 'the attempt is refused');
  t.equal(dev.phase, 'failed', 'the target had completed something: the device failed for good, no retry');
  t.equal(await read, 'E_FEATURES_NOT_OK', 'the carried read is rejected with the error (settledCode bounds the wait: it does not wait for close())');
  t.equal(dev.carriedTokens(0).length, 0, 'nothing is carried any more');
  t.equal(rq.pending, 0, 'nothing pending on the queue');
  t.equal(await codeOfAsync(() => dev.dma.free(b)), 'no error', 'its buffer can be freed');
});

// The same kind of fault as dma-free-of-region-a-waiting-request-uses-refused: a request the SDK
// accepted and holds off the ring still uses its memory. A blk.readDma waiting for a request slot
// (every slot busy) holds its target: free() of it is refused E_DMA_IN_USE and the read completes
// into it. A broken standalone RequestQueue's chains stay held only until the queue is reset:
// then free() of their buffers is accepted again.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { RequestQueue } from '../../lib/virtio/request-queue.js';
import { codeOf, settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('blk.readDma waiting for a request slot holds its target: free() refused, the read completes', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { depth: 1 });
  t.teardown(() => blk.close());
  const first = settledCode(blk.read(0, 8), 5000);
  const target = blk.device.dma.alloc(4096);
  const read = settledCode(blk.readDma(8, 8, target), 5000);
  await turns(10);
  t.equal(blk.requests.pending, 1, 'only the first read is on the queue: the readDma waits for the one slot');
  t.equal(codeOf(() => blk.device.dma.free(target)), 'E_DMA_IN_USE', 'free() of the target of the readDma waiting for a slot is refused');
  for (let i = 0; i < 10 && sim.held + blk.requests.pending > 0; i++) {
    sim.completeNow();
    await turns(5);
  }
  t.equal(await first, 'ok');
  t.equal(await read, 'ok', 'the readDma completes into its target');
  t.equal(codeOf(() => blk.device.dma.free(target)), 'no error', 'once it settled the target is free to go');
});

t.test('a broken standalone RequestQueue holds its chains\' buffers until the queue is reset', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => dev.close());
  const vq = dev.setupQueue(0, { size: 8 });
  const rq = new RequestQueue(vq as never);
  await dev.driverOk();
  const bufs = [dev.dma.alloc(4096), dev.dma.alloc(4096)];
  for (const b of bufs) new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 4 /* FLUSH */, true);
  const submit = (b: (typeof bufs)[number]): Promise<string> => settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]), 5000);
  const first = submit(bufs[0]!);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  sim.injectFault({ kind: 'bad-used-id', count: 1 });
  sim.completeNow();
  const second = submit(bufs[1]!);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  rq.processUsed();
  t.equal(await first, 'E_DEVICE_BAD_USED_ID');
  t.equal(await second, 'E_DEVICE_BAD_USED_ID');
  t.equal(vq.inFlight, 0, 'the broken queue has no chains in flight (their requests were rejected)');
  t.equal(codeOf(() => dev.dma.free(bufs[1]!)), 'E_DMA_IN_USE', 'held while the device may still write into it');
  vq.reset();
  t.equal(codeOf(() => dev.dma.free(bufs[1]!)), 'no error', 'after the queue was reset the buffer can be freed');
});

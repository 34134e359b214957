// A RequestQueue used on its own (new RequestQueue(device.setupQueue(q)), no QueueSet to reset the
// device first) breaks when the device writes a bad used id: every request is rejected at once
// and the virtqueue forgets its chains (Virtqueue.fail) — so dma.free() of a buffer another chain
// still on the device points at is accepted, though the device was never reset and still writes
// into it when it completes that chain (README: "a chain still in a ring is rejected only after the
// device that could write into its buffers was reset"; free() is refused for "a region any byte of
// which a request in flight points at ... until the chain is used, reset or closed"). What should
// happen: a broken queue's chains keep their buffers held until the queue is reset or closed.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { RequestQueue } from '../../lib/virtio/request-queue.js';
import { codeOf, settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: after a bad used id the device was not reset: the other chain's buffer stays held`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual' });
    const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { features: { layout } });
    t.teardown(() => dev.close());
    const rq = new RequestQueue(dev.setupQueue(0, { size: 8 }) as never);
    await dev.driverOk();
    const bufs = [dev.dma.alloc(4096), dev.dma.alloc(4096)];
    for (const b of bufs) new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 4 /* FLUSH */, true);
    const submit = (b: (typeof bufs)[number]): Promise<string> => settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]), 5000);
    const first = submit(bufs[0]!);
    for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
    // The device completes the first request with a used element naming a bad id, and fetches the
    // second (submitted at once, before the driver looks at the used ring).
    sim.injectFault({ kind: 'bad-used-id', count: 1 });
    sim.completeNow();
    const second = submit(bufs[1]!);
    for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
    t.equal(sim.held, 1, 'the second request is on the device');
    rq.processUsed();
    t.equal(await first, 'E_DEVICE_BAD_USED_ID');
    t.equal(await second, 'E_DEVICE_BAD_USED_ID', 'the second is rejected too, the device not reset');
    t.equal(sim.held, 1, 'the device still holds the second request: it will write its status byte');
    t.equal(codeOf(() => dev.dma.free(bufs[1]!)), 'E_DMA_IN_USE', 'free() of the buffer of the chain still on the device is refused');
  });
}

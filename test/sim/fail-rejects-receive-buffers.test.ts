// VirtioDevice.fail() gives the device up for good: a QueueSet rejects every pending request with
// E_DEVICE_FAILED, and recover() refuses the device from then on. A receive buffer (a drains: false
// queue) in flight was kept for a recover() instead, like after a failure the device raised: its
// request stayed pending, and its buffer could not be freed (E_DMA_IN_USE), until close().

import t from 'tap';
import { heldRequest } from '../support/held-request.js';
import { codeOfAsync } from '../support/codes.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: fail() with a receive buffer in flight rejects its request, and its buffer can be freed`, async (t) => {
    const h = await heldRequest(t, { layout, queue: { drains: false }, read: true });
    t.equal(h.sim.held, 1, 'the device holds the receive buffer');
    h.dev.fail();
    for (let i = 0; i < 100 && h.rq.pending > 0; i++) await turn();
    t.equal(h.dev.phase, 'failed');
    // settledCode bounds the wait (10 s); close() is not called before it.
    t.equal(await h.settled, 'E_DEVICE_FAILED', 'the request is rejected with the device\'s error, without a close()');
    t.equal(await codeOfAsync(() => h.dev.dma.free(h.buffer)), 'no error', 'its buffer is the caller\'s again');
    t.equal(await codeOfAsync(() => h.queues.recover()), 'E_BAD_STATE', 'recover() refuses a device given up on');
  });
}

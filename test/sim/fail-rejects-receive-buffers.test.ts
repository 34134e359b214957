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

// The same after a failure the device raised: the receive buffer was kept for recover(); a fail()
// then (onFailure is not told again: the failure was being handled) left it kept, pending and
// unfreeable, though recover() now refuses the device.
for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: DEVICE_NEEDS_RESET keeps the receive buffer for recover(); fail() then rejects it, and it can be freed`, async (t) => {
    const h = await heldRequest(t, { layout, queue: { drains: false }, read: true });
    h.sim.injectFault({ kind: 'needs-reset' });
    for (let i = 0; i < 200 && h.dev.phase === 'live'; i++) await turn();
    t.equal(h.dev.phase, 'needs-reset', 'the device failed');
    for (let i = 0; i < 50 && h.sim.held > 0; i++) await turn();
    t.equal(h.sim.held, 0, 'the reset dropped the buffer: the driver keeps it for recover()');
    t.equal(await codeOfAsync(() => h.dev.dma.free(h.buffer)), 'E_DMA_IN_USE', 'kept: free() refused');
    h.dev.fail();
    t.equal(h.dev.phase, 'failed');
    t.equal(await h.settled, 'E_DEVICE_FAILED', 'the kept request is rejected with fail()\'s error, without a close()');
    t.equal(await codeOfAsync(() => h.dev.dma.free(h.buffer)), 'no error', 'its buffer is the caller\'s again');
    t.equal(await codeOfAsync(() => h.queues.recover()), 'E_BAD_STATE', 'recover() refuses a device given up on');
  });
}

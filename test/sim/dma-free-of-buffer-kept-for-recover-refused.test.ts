// A queue whose chains wait on outside events (drains: false, e.g. receive buffers) keeps them
// across a device failure and posts them again at recover(). While kept, the buffers are still the
// request's: dma.free() of one is refused E_DMA_IN_USE (it would otherwise be reposted pointing at
// freed memory, and the device would write there), and once recover() reposted it and the device
// used it, free() works again.

import t from 'tap';
import { codeOfAsync } from '../support/codes.js';
import { heldRequest } from '../support/held-request.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: a buffer kept for recover() cannot be freed until the reposted request is used`, async (t) => {
    const { sim, dev, queues, buffer: b, settled: read } = await heldRequest(t, { layout, queue: { drains: false }, read: true });
    t.equal(sim.held, 1, 'the device holds the request');

    sim.injectFault({ kind: 'needs-reset' });
    for (let i = 0; i < 200 && dev.phase === 'live'; i++) await turn();
    t.equal(dev.phase, 'needs-reset', 'the device failed');
    for (let i = 0; i < 50 && sim.held > 0; i++) await turn();
    t.equal(sim.held, 0, 'the reset dropped what the device held: the chain is kept by the driver for recover()');

    const refused = await codeOfAsync(() => dev.dma.free(b));
    t.equal(refused, 'E_DMA_IN_USE', 'free() of the kept buffer is refused');

    await queues.recover();
    t.equal(dev.phase, 'live', 'recovered');
    for (let i = 0; i < 50 && sim.held < 1; i++) await turn();
    t.equal(sim.held, 1, 'the kept request was posted again');
    t.equal(await codeOfAsync(() => dev.dma.free(b)), 'E_DMA_IN_USE', 'still refused while in flight on the new ring');
    sim.completeNow();
    t.equal(await read, 'ok', 'the request completes into the buffer it kept');
    t.equal(await codeOfAsync(() => dev.dma.free(b)), 'no error', 'and then the buffer can be freed');
  });
}

// Receive buffers the device filled just before it failed are posted again by recover(). The
// failure is settled with the queues halted (QueueSet.settleFailure: halt, reset, take the used
// ring); RxQueue takes those frames, and a halted queue would refuse the buffers posted again —
// RxQueue keeps them idle and NetDriver.recover() posts them once the device is back, beside the
// ones the reset ring forgot (QueueSet's kept buffers). Invariant: after every recover() each
// receive queue has min(rxBuffers, ring size) buffers posted, however many failures came before.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const layout of ['split', 'packed'] as const) {
  for (const mergeable of [false, true]) {
    t.test(`${layout}${mergeable ? ', MRG_RXBUF' : ''}: buffers in the used ring at a device failure are posted again by recover()`, async (t) => {
      const sim = createSimDevice({ type: 'net', mergeable });
      const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts: 'msix', rxBuffers: 8, queueSize: 16 });
      t.teardown(() => net.close());
      const rx = (net as unknown as { queues: { get(i: number): { pending: number } } }).queues.get(0)!;
      let got = 0;
      net.onFrame(() => { got++; });
      const posted: number[] = [];
      // Three failures in a row, each with three frames in the used ring that the driver had not
      // looked at yet: without the fix each one cost three buffers (8 → 5 → 2 → 0).
      for (let round = 1; round <= 3; round++) {
        sim.injectFault({ kind: 'interrupt-silence', queue: 0 });
        for (let i = 0; i < 3; i++) await net.send(new Uint8Array(60).fill(i + 1));
        sim.injectFault({ kind: 'needs-reset' });
        for (let i = 0; i < 200 && net.device.phase === 'live'; i++) await sleep(1);
        sim.clearFaults();
        await net.recover();
        posted.push(rx.pending);
        if (round === 1) {
          t.equal(got, 3, 'the three frames were delivered (taken while the failure was handled)');
          t.equal(rx.pending, 8, 'all 8 receive buffers are posted again after recover()');
        }
      }
      t.same(posted, [8, 8, 8], 'after every recover() all 8 receive buffers are posted');
      t.equal(got, 9, 'every frame in the used ring at a failure was delivered, once');
      // Receive still works: a frame sent now arrives.
      await net.send(new Uint8Array(60).fill(9));
      for (let i = 0; i < 200 && got < 10; i++) await sleep(1);
      t.equal(got, 10, 'a frame after the last recover() is delivered');
      t.equal(rx.pending, 8, 'and its buffer is posted again');
    });
  }
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}, MRG_RXBUF: stop / reinit with frames in the used ring keeps every receive buffer posted`, async (t) => {
    const sim = createSimDevice({ type: 'net', mergeable: true });
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts: 'msix', rxBuffers: 8, queueSize: 16 });
    t.teardown(() => net.close());
    const rx = (net as unknown as { queues: { get(i: number): { pending: number } } }).queues.get(0)!;
    let got = 0;
    net.onFrame(() => { got++; });
    sim.injectFault({ kind: 'interrupt-silence', queue: 0 });
    for (let i = 0; i < 3; i++) await net.send(new Uint8Array(60).fill(i + 1));
    await net.stop();
    sim.clearFaults();
    await net.reinit(net.snapshot());
    t.equal(got, 3, 'the three frames were delivered');
    t.equal(rx.pending, 8, 'all 8 receive buffers are posted after reinit()');
    await net.send(new Uint8Array(60).fill(9));
    for (let i = 0; i < 200 && got < 4; i++) await sleep(1);
    t.equal(got, 4, 'a frame after reinit() is delivered');
  });
}

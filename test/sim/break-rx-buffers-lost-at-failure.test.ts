// Receive buffers the device filled just before it failed are lost for good: QueueSet.settleFailure
// halts the queues, resets the device and then takes the used ring (processUsed); RxQueue's
// completion callback delivers the frame and posts the buffer again (finally → submitCb) — into a
// queue that is halted, which refuses it (settleLater with the halt error) and the callback then
// drops it (`if (error || closed) return`). recover() reposts only the buffers the reset ring
// forgot (QueueSet.kept), so after recover the receive queue runs with fewer buffers than
// rxBuffers — one fewer for every buffer that was in the used ring at the failure. Enough failures
// and the queue has none: receive stops for good. (Also on the promise version before 8ecf1e2.)

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
      const rx = (net as unknown as { queues: { get(i: number): { pending: number } } }).queues.get(0);
      let got = 0;
      net.onFrame(() => { got++; });
      // Three frames land in the used ring unannounced; the device then fails before the driver looks.
      sim.injectFault({ kind: 'interrupt-silence', queue: 0 });
      for (let i = 0; i < 3; i++) await net.send(new Uint8Array(60).fill(i + 1));
      sim.injectFault({ kind: 'needs-reset' });
      for (let i = 0; i < 200 && net.device.phase === 'live'; i++) await sleep(1);
      sim.clearFaults();
      await net.recover();
      t.equal(got, 3, 'the three frames were delivered (taken while the failure was handled)');
      t.equal(rx.pending, 8, 'all 8 receive buffers are posted again after recover()');
    });
  }
}

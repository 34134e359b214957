// Found by a breaker (fixed: a second VirtioDevice.close() waits for the first and gets its orphans;
// QueueSet.close() and StatefulDriver.close() likewise resolve once, when done). What it was: a send in flight when a driver's close() races a device.close() already under way
// never settles, and its transmit buffer is never freed.
// Mechanism: VirtioDevice.close() sets phase 'closed', awaits the reset, and only in its finally
// collects the in-flight tokens (orphans) and tells its close listeners. QueueSet.close(), called
// meanwhile by NetDriver.close(), calls device.close() again, which sees phase 'closed' and returns
// what takeCarried() holds — not the chains still in the rings — so settleClosed() rejects nothing
// in flight and sets `closed`. When the first close ends, the QueueSet's onClose listener sees
// `closed` and returns ("close() itself: it settles them"): the orphans are dropped. The send's
// promise stays pending for good (against "every request a RequestQueue accepted settles exactly
// once"), and its DMA buffer, neither in txFree at release() nor freed by the send's finally, leaks.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';

const usedOf = (dma: HeapDmaAllocator): number => (dma as unknown as { used: number }).used;
const sleep = (ms: number): Promise<string> => new Promise((r) => setTimeout(() => r('never settled'), ms));

for (const stuck of [true, false]) {
  t.test(`net: a send in flight settles when close() races a device.close() under way (reset ${stuck ? 'slow' : 'prompt'})`, async (t) => {
    const dma = new HeapDmaAllocator();
    const sim = createSimDevice({ type: 'net', mergeable: true, dma });
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16, resetTimeoutMs: 200 });
    sim.injectFault({ kind: 'completion-silence', queue: 1 }); // the transmit queue holds the send
    const send = net.send(new Uint8Array(60)).then(() => 'sent', (e: { code?: string }) => e.code ?? 'error');
    await new Promise((r) => setTimeout(r, 10));
    if (stuck) sim.injectFault({ kind: 'reset-stuck' });
    const dc = net.device.close();
    await net.close();
    await dc;
    t.equal(await Promise.race([send, sleep(1000)]), 'E_CLOSED', 'the send in flight is rejected E_CLOSED');
    t.equal(usedOf(dma), 0, 'no DMA bytes still allocated once both closes ended');
  });
}

t.test('blk (same QueueSet path): a read in flight settles when close() races a device.close() under way', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), {});
  sim.injectFault({ kind: 'completion-silence' });
  const read = blk.read(0, 1).then(() => 'read', (e: { code?: string }) => e.code ?? 'error');
  await new Promise((r) => setTimeout(r, 10));
  const dc = blk.device.close();
  await blk.close();
  await dc;
  t.equal(await Promise.race([read, sleep(1000)]), 'E_CLOSED', 'the read in flight is rejected E_CLOSED');
});

// Found by a breaker (fixed: a second VirtioDevice.close() waits for the first and gets its orphans;
// QueueSet.close() and StatefulDriver.close() likewise resolve once, when done). What it was: a driver's close() racing a device.close() already under way (e.g. started by an
// onFailure/onFrame listener, or user code holding net.device) resolves and frees every receive
// and transmit DMA buffer while the first close is still resetting the device.
// Mechanism: VirtioDevice.close() sets phase 'closed' first and then awaits the reset; a second
// device.close() (QueueSet.close's) sees phase 'closed' and returns at once, so QueueSet.close()
// resolves and NetDriver/ConsoleDriver.close() call release() before the reset has ended —
// against rx-buffers.ts's rule "close() frees them all once the device was reset (never before:
// the device may still write into a posted one)". With a reset that takes long (reset-stuck,
// resetTimeoutMs 300) the buffers are back in the allocator for ~300 ms while the device has not
// acknowledged the reset. BlkDriver.close() (pool.release after queues.close) has the same race.
// Expected: the driver's close() waits for the device close under way.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';

const usedOf = (dma: HeapDmaAllocator): number => (dma as unknown as { used: number }).used;

t.test('net: close() racing a device.close() under way frees nothing before the reset ended', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'net', mergeable: true, dma });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16, resetTimeoutMs: 300 });
  sim.injectFault({ kind: 'reset-stuck' });
  let deviceClosed = false;
  const before = usedOf(dma);
  const dc = net.device.close().then(() => { deviceClosed = true; });
  await net.close();
  const atClose = usedOf(dma);
  t.equal(deviceClosed, true, 'net.close() resolves only once the device close under way has ended');
  t.ok(deviceClosed || atClose === before, `no DMA freed before the reset ended (${before} → ${atClose} bytes while still resetting)`);
  await dc;
});

t.test('console: close() racing a device.close() under way frees nothing before the reset ended', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1, dma });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 8, resetTimeoutMs: 300 });
  await con.waitForPort(0);
  sim.injectFault({ kind: 'reset-stuck' });
  let deviceClosed = false;
  const before = usedOf(dma);
  const dc = con.device.close().then(() => { deviceClosed = true; });
  await con.close();
  const atClose = usedOf(dma);
  t.equal(deviceClosed, true, 'con.close() resolves only once the device close under way has ended');
  t.ok(deviceClosed || atClose === before, `no DMA freed before the reset ended (${before} → ${atClose} bytes while still resetting)`);
  await dc;
});

t.test('blk (same QueueSet.close path): close() racing a device.close() under way frees nothing before the reset ended', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'blk', dma });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { resetTimeoutMs: 300 });
  await blk.read(0, 1);
  sim.injectFault({ kind: 'reset-stuck' });
  let deviceClosed = false;
  const before = usedOf(dma);
  const dc = blk.device.close().then(() => { deviceClosed = true; });
  await blk.close();
  const atClose = usedOf(dma);
  t.equal(deviceClosed, true, 'blk.close() resolves only once the device close under way has ended');
  t.ok(deviceClosed || atClose === before, `no DMA freed before the reset ended (${before} → ${atClose} bytes while still resetting)`);
  await dc;
});

t.test('net: a second close() resolves while the first is still resetting the device (same family)', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'net', mergeable: true, dma });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16, resetTimeoutMs: 300 });
  sim.injectFault({ kind: 'reset-stuck' });
  let firstDone = false;
  const first = net.close().then(() => { firstDone = true; });
  await net.close();
  t.equal(firstDone, true, 'the second close() resolves only once the device is closed (its buffers freed)');
  await first;
});

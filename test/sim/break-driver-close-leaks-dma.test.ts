// Breaker: NetDriver.close() and ConsoleDriver.close() never free their receive buffers (net: and
// its transmit buffers), so on an allocator that outlives the driver (createSimDevice({ dma }),
// a VFIO container reused for the next open) every open/close cycle leaks DMA memory until
// alloc() throws E_DMA_EXHAUSTED. The rings themselves are freed (queue/core.ts), BlkDriver frees
// its slots, ConsoleDriver frees its transmit pools and control buffers; the receive buffers
// (net rx.ts RxQueue.post / NetDriver.open alloc, console index.ts PortRx alloc) and net txFree are
// owned by nobody at close — the new idle list in RxQueue is dropped the same way.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';

const usedOf = (dma: HeapDmaAllocator): number => (dma as unknown as { used: number }).used;

t.test('net: open + send + close on one allocator gives every byte back', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'net', mergeable: true, dma });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16 });
  await net.send(new Uint8Array(60));
  await net.close();
  t.equal(usedOf(dma), 0, 'no DMA bytes still allocated after close()');
});

t.test('net: a failure kept receive buffers idle, then close(): nothing leaked', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'net', mergeable: true, dma });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16 });
  sim.injectFault({ kind: 'interrupt-silence', queue: 0 });
  for (let i = 0; i < 3; i++) await net.send(new Uint8Array(60));
  sim.injectFault({ kind: 'needs-reset' });
  for (let i = 0; i < 200 && net.device.phase === 'live'; i++) await new Promise((r) => setTimeout(r, 1));
  await net.close();
  t.equal(usedOf(dma), 0, 'no DMA bytes still allocated after close()');
});

t.test('net: repeated open/close on a bounded allocator does not run out', async (t) => {
  const dma = new HeapDmaAllocator({ limit: 1 << 20 });
  let error: unknown;
  let cycles = 0;
  try {
    for (; cycles < 40; cycles++) {
      const sim = createSimDevice({ type: 'net', mergeable: true, dma });
      const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 64, queueSize: 64 });
      await net.close();
    }
  } catch (e) {
    error = e;
  }
  t.equal((error as { code?: string } | undefined)?.code, undefined, `40 open/close cycles on a 1 MiB allocator (failed after ${cycles})`);
});

t.test('console: open + close on one allocator gives every byte back', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1, dma });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 8 });
  await con.waitForPort(0);
  await con.close();
  t.equal(usedOf(dma), 0, 'no DMA bytes still allocated after close()');
});

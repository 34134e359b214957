// Found by a breaker (fixed: every owner keeps what it allocated — drivers/dma-buffers.ts for receive buffers — and close() frees it after the reset, a failed open() too).
// NetDriver.close() and ConsoleDriver.close() never free their receive buffers (net: and
// its transmit buffers), so on an allocator that outlives the driver (createSimDevice({ dma }),
// a VFIO container reused for the next open) every open/close cycle leaks DMA memory until
// alloc() throws E_DMA_EXHAUSTED. The rings themselves are freed (queue/core.ts), BlkDriver frees
// its slots, ConsoleDriver frees its transmit pools and control buffers; the receive buffers
// (net rx.ts RxQueue.post / NetDriver.open alloc, console index.ts PortRx alloc) and net txFree are
// owned by nobody at close — the new idle list in RxQueue is dropped the same way. A failed
// NetDriver.open leaked the receive buffers allocated before the one that failed.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
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

t.test('net: sends in flight at close() give their transmit buffers back', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'net', mergeable: true, dma });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16 });
  sim.injectFault({ kind: 'completion-silence' });
  const sends = Array.from({ length: 4 }, () => net.send(new Uint8Array(60)));
  await new Promise((r) => setTimeout(r, 5));
  await net.close();
  const settled = await Promise.allSettled(sends);
  t.ok(settled.every((s) => s.status === 'rejected'), 'the sends in flight are rejected by close()');
  t.equal(usedOf(dma), 0, 'no DMA bytes still allocated after close() and the rejected sends');
});

t.test('net: a failed open() frees the receive buffers it allocated', async (t) => {
  const dma = new HeapDmaAllocator({ limit: 1 << 18 });
  const sim = createSimDevice({ type: 'net', mergeable: true, dma });
  const error = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix', rxBuffers: 8, queueSize: 16, rxBufferSize: 60_000 })
    .then(() => undefined, (e: { code?: string }) => e);
  t.equal(error?.code, 'E_DMA_EXHAUSTED', 'a receive buffer does not fit (8 × 60,000 bytes in 256 KiB)');
  t.equal(usedOf(dma), 0, 'the ones allocated before it (and the control buffer) were freed');
});

t.test('console: writes in flight and a failure, then close(): nothing leaked', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1, dma });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 8, interrupts: 'msix' });
  const port = await con.waitForPort(0);
  port.on('error', () => undefined);
  sim.injectFault({ kind: 'interrupt-silence' });
  for (let i = 0; i < 3; i++) sim.port(0)!.send(`b${i}`);
  sim.injectFault({ kind: 'completion-silence' });
  port.write('in flight');
  await new Promise((r) => setTimeout(r, 5));
  sim.injectFault({ kind: 'needs-reset' });
  for (let i = 0; i < 200 && con.device.phase === 'live'; i++) await new Promise((r) => setTimeout(r, 1));
  await con.close();
  await new Promise((r) => setTimeout(r, 10));
  t.equal(usedOf(dma), 0, 'no DMA bytes still allocated after close()');
});

t.test('console: repeated open/close on a bounded allocator does not run out', async (t) => {
  const dma = new HeapDmaAllocator({ limit: 1 << 20 });
  let error: unknown;
  let cycles = 0;
  try {
    for (; cycles < 40; cycles++) {
      const sim = createSimDevice({ type: 'console', multiport: true, ports: 1, dma });
      const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 16 });
      await con.waitForPort(0);
      await con.close();
    }
  } catch (e) {
    error = e;
  }
  t.equal((error as { code?: string } | undefined)?.code, undefined, `40 open/close cycles on a 1 MiB allocator (failed after ${cycles})`);
});

t.test('blk and rng: close() and a failed open() give every byte back', async (t) => {
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'blk', capacitySectors: 64, dma });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  await blk.read(0, 1);
  await blk.close();
  t.equal(usedOf(dma), 0, 'blk: nothing allocated after close()');
  const small = new HeapDmaAllocator({ limit: 256 << 10 });
  const failed = createSimDevice({ type: 'blk', capacitySectors: 64, dma: small });
  const error = await BlkDriver.open(new VirtioPciTransport(failed.fn), { depth: 64, queueSize: 64 }).then(() => undefined, (e: { code?: string }) => e);
  t.equal(error?.code, 'E_DMA_EXHAUSTED', 'blk: the slots do not fit');
  t.equal(usedOf(small), 0, 'blk: the slots allocated before the one that failed were freed');
  const rngDma = new HeapDmaAllocator();
  const rngSim = createSimDevice({ type: 'rng', dma: rngDma });
  const rng = await RngDriver.open(new VirtioPciTransport(rngSim.fn));
  await rng.read(16);
  await rng.close();
  t.equal(usedOf(rngDma), 0, 'rng: nothing allocated after close()');
});

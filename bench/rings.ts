// Ring benchmark: requests per second through split and packed rings against the in-process
// reference device (blk FLUSH requests: a 16-byte header and a status byte, so the ring and the
// device's queue processing are what is measured), at batch 1 (submit, wait, repeat) and batch 32
// (32 in flight, kicked once per batch). Each figure is also printed as a ratio against the
// baseline measured in this same run — split, batch 1 — because absolute numbers on a shared
// machine vary by ±30 %.
//
//   npm run bench                 default: 1.5 s per configuration
//   node dist/bench/rings.js 5    5 s per configuration

import { createSimDevice } from '../lib/sim/index.js';
import { VirtioPciTransport } from '../lib/transport/pci/transport.js';
import { VirtioDevice } from '../lib/virtio/device.js';
import { QueueSet } from '../lib/virtio/queue-set.js';
import { BLK_REQ_HEADER_LEN, BlkReq } from '../lib/spec/index.js';
import type { Layout } from '../lib/virtio/queue/types.js';

interface Result {
  layout: Layout;
  batch: number;
  interrupts: 'msix' | 'poll';
  perSecond: number;
}

async function measure(layout: Layout, batch: number, interrupts: 'auto' | 'poll', seconds: number): Promise<Result> {
  const sim = createSimDevice({ type: 'blk', queueMaxSize: 256 });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { features: { layout }, interrupts });
  const qs = new QueueSet(dev);
  const rq = qs.add(0, { size: 256 });
  await dev.driverOk();
  const dma = dev.dma;
  const reqs = Array.from({ length: batch }, () => {
    const r = dma.alloc(64);
    new DataView(r.bytes.buffer, r.bytes.byteOffset).setUint32(0, BlkReq.FLUSH, true);
    return { readable: [{ addr: r.iova, len: BLK_REQ_HEADER_LEN }], writable: [{ addr: r.iova + 32n, len: 1 }] };
  });
  // Warm up the JIT and the indirect pools before timing.
  for (let i = 0; i < 200; i++) await Promise.all(rq.submitMany(reqs));
  let done = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < until) {
    await Promise.all(rq.submitMany(reqs));
    done += batch;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  await qs.close();
  return { layout, batch, interrupts: dev.interruptMode, perSecond: done / elapsed };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 1.5);
  const results: Result[] = [];
  for (const interrupts of ['auto', 'poll'] as const) {
    for (const batch of [1, 32]) {
      for (const layout of ['split', 'packed'] as const) results.push(await measure(layout, batch, interrupts, seconds));
    }
  }
  const baseline = results[0]!.perSecond;
  console.log(`ring benchmark, ${seconds} s per configuration; baseline = split, batch 1, ${results[0]!.interrupts} (${Math.round(baseline)} req/s)`);
  console.log('layout  batch  delivery  req/s       ratio');
  for (const r of results) {
    console.log(`${r.layout.padEnd(7)} ${String(r.batch).padStart(5)}  ${r.interrupts.padEnd(8)}  ${String(Math.round(r.perSecond)).padStart(9)}  ${(r.perSecond / baseline).toFixed(2)}×`);
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify({ seconds, results }));
}

await main();

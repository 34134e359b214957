// Pause benchmark: what a user pays for stop → state read → reinit → DRIVER_OK on the reference
// device, for 1, 8 and 64 queues, per mechanism (ring-state, suspend, quiesce), median and p99 over
// many cycles, each with requests in flight on every queue at the stop. Ratios are against
// ring-state with 1 queue, measured in the same run.
//
//   npm run bench:pause            default 200 cycles per configuration
//   node dist/bench/pause.js 50    fewer
//   node dist/bench/pause.js 50 --json   and a JSON line at the end

import { createSimDevice } from '../lib/sim/index.js';
import { HeapDmaAllocator } from '../lib/mem/dma.js';
import { VirtioPciTransport } from '../lib/transport/pci/transport.js';
import { VirtioDevice } from '../lib/virtio/device.js';
import { QueueSet } from '../lib/virtio/queue-set.js';
import { BLK_REQ_HEADER_LEN, BlkReq } from '../lib/spec/index.js';
import type { Mechanism } from '../lib/virtio/snapshot/index.js';
import { benchProgram, cliArgs, countArgument, isMain, jsonOption, parseWith } from './cli.js';

interface Row {
  mechanism: Mechanism;
  queues: number;
  median: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(mechanism: Mechanism, queues: number, cycles: number): Promise<Row> {
  const dma = new HeapDmaAllocator();
  const state = mechanism === 'ring-state' ? { ringState: true } : mechanism === 'suspend' ? { suspend: true } : {};
  const sim = createSimDevice({ type: 'blk', queues, queueMaxSize: 64, state, dma, completion: { latencyMs: 0 } });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { features: { layout: 'split' } });
  const qs = new QueueSet(dev);
  const rqs = Array.from({ length: queues }, (_, q) => qs.add(q, { size: 64 }));
  await dev.driverOk();
  const req = dma.alloc(64);
  new DataView(req.bytes.buffer, req.bytes.byteOffset).setUint32(0, BlkReq.FLUSH, true);
  const chain = { readable: [{ addr: req.iova, len: BLK_REQ_HEADER_LEN }], writable: [{ addr: req.iova + 32n, len: 1 }] };
  const pauses: number[] = [];
  for (let c = 0; c < cycles; c++) {
    // Four requests in flight on every queue at the stop.
    const inFlight = rqs.flatMap((rq) => rq.submitMany([chain, chain, chain, chain]));
    const start = process.hrtime.bigint();
    await qs.stop({ mechanism });
    for (let q = 0; q < queues; q++) dev.vqState(q);
    await qs.reinit(dev.snapshot());
    pauses.push(Number(process.hrtime.bigint() - start) / 1e6);
    await Promise.all(inFlight);
  }
  await qs.close();
  pauses.sort((a, b) => a - b);
  return { mechanism, queues, median: percentile(pauses, 50), p99: percentile(pauses, 99) };
}

/** The command line: [CYCLES] [--json]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { cycles: number; json: boolean } {
  const program = benchProgram('pause', 'stop → state read → reinit → DRIVER_OK on the reference device for 1, 8 and 64 queues, per mechanism: median and p99.',
    'Run: npm run bench:pause -- [CYCLES] [--json]')
    .addArgument(countArgument('cycles', 'stop/reinit cycles per configuration', 200))
    .addOption(jsonOption());
  const { opts, args } = parseWith(program, argv);
  return { cycles: args[0] as number, json: opts.json === true };
}

async function main(): Promise<void> {
  const { cycles, json } = cliArgs(parseArgs);
  const rows: Row[] = [];
  for (const mechanism of ['ring-state', 'suspend', 'quiesce'] as const) {
    for (const queues of [1, 8, 64]) rows.push(await measure(mechanism, queues, cycles));
  }
  const base = rows[0]!.median;
  console.log(`pause benchmark: stop → state read → snapshot → reinit → DRIVER_OK, ${cycles} cycles each; baseline = ring-state, 1 queue (median ${base.toFixed(3)} ms)`);
  console.log('mechanism    queues   median ms   p99 ms   median ratio');
  for (const r of rows) {
    console.log(`${r.mechanism.padEnd(12)} ${String(r.queues).padStart(6)}   ${r.median.toFixed(3).padStart(9)}   ${r.p99.toFixed(3).padStart(6)}   ${(r.median / base).toFixed(2)}×`);
  }
  if (json) console.log(JSON.stringify({ cycles, rows }));
}

if (isMain(import.meta.url)) await main();

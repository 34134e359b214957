// Ring benchmark: requests per second through split and packed rings against the in-process
// reference device (blk FLUSH requests: a 16-byte header and a status byte, so the ring and the
// device's queue processing are what is measured), at batch 1 (submit, wait, repeat) and batch 32
// (32 in flight, kicked once per batch). Each figure is also printed as a ratio against the
// baseline measured in this same run — split, batch 1 — because absolute numbers on a shared
// machine vary by ±30 %. Beside wall-clock req/s it prints requests per CPU-second of this process
// (process.cpuUsage), which a loaded machine disturbs less, and the batch-32 / batch-1 gain.
//
//   npm run bench                          default: 1.5 s per configuration
//   node dist/bench/rings.js 5             5 s per configuration
//   node dist/bench/rings.js --only split/32/poll   one configuration (e.g. under --cpu-prof)
//   node dist/bench/rings.js --json        also one JSON line with every figure
//   node dist/bench/rings.js --no-peer     without the driver-only bound (null-device.ts)

import { createSimDevice } from '../lib/sim/index.js';
import { VirtioPciTransport } from '../lib/transport/pci/transport.js';
import { VirtioDevice } from '../lib/virtio/device.js';
import { QueueSet } from '../lib/virtio/queue-set.js';
import { BLK_REQ_HEADER_LEN, BlkReq } from '../lib/spec/index.js';
import type { Layout } from '../lib/virtio/queue/types.js';
import { Option } from 'commander';
import { benchProgram, cliArgs, isMain, jsonOption, parseWith, secondsArgument } from './cli.js';
import { measureDriverOnly } from './null-device.js';

interface Result {
  layout: Layout;
  batch: number;
  interrupts: 'msix' | 'poll';
  perSecond: number;
  /** Requests per second of this process's CPU time (user + system). */
  perCpuSecond: number;
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
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < until) {
    await Promise.all(rq.submitMany(reqs));
    done += batch;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  await qs.close();
  return {
    layout, batch, interrupts: dev.interruptMode, perSecond: done / elapsed,
    perCpuSecond: done / ((used.user + used.system) / 1e6),
  };
}

interface DriverOnly {
  layout: Layout;
  batch: number;
  perSecond: number;
  perCpuSecond: number;
}

/** The configurations, layout/batch/delivery: what --only takes. */
const CONFIGURATIONS = (['split', 'packed'] as const).flatMap((l) => [1, 32].flatMap((b) => [`${l}/${b}/msix`, `${l}/${b}/poll`]));

/** The command line: [SECONDS] [--only layout/batch/delivery] [--json] [--no-peer]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { seconds: number; only: string | undefined; json: boolean; peer: boolean } {
  const program = benchProgram('rings', 'Requests per second through split and packed rings against the in-process reference device, batch 1 and 32, MSI-X-mode and polling delivery.',
    'Run: npm run bench -- [SECONDS] [--only split/32/poll] [--json] [--no-peer]')
    .addArgument(secondsArgument(1.5))
    .addOption(new Option('--only <layout/batch/delivery>', 'run one configuration (e.g. under node --cpu-prof); default: all').choices(CONFIGURATIONS))
    .addOption(jsonOption())
    .addOption(new Option('--no-peer', 'without the driver-only bound (bench/null-device.ts); default: measured'));
  const { opts, args } = parseWith(program, argv);
  return { seconds: args[0] as number, only: opts.only as string | undefined, json: opts.json === true, peer: opts.peer !== false };
}

async function main(): Promise<void> {
  const { seconds, only, json, peer } = cliArgs(parseArgs);
  const results: Result[] = [];
  for (const interrupts of ['auto', 'poll'] as const) {
    for (const batch of [1, 32]) {
      for (const layout of ['split', 'packed'] as const) {
        if (only !== undefined && only !== `${layout}/${batch}/${interrupts === 'auto' ? 'msix' : 'poll'}`) continue;
        results.push(await measure(layout, batch, interrupts, seconds));
      }
    }
  }
  if (results.length === 0) throw new Error(`--only ${only}: no such configuration (layout/batch/delivery, e.g. split/32/poll)`);
  const baseline = results[0]!;
  const b1 = (r: Result): Result | undefined => results.find((x) => x.batch === 1 && x.layout === r.layout && x.interrupts === r.interrupts);
  console.log(`ring benchmark, ${seconds} s per configuration; baseline = ${baseline.layout}, batch ${baseline.batch}, ${baseline.interrupts} (${Math.round(baseline.perSecond)} req/s)`);
  console.log('layout  batch  delivery      req/s  ratio   req/cpu-s  ratio  batch gain');
  for (const r of results) {
    const one = b1(r);
    const gain = r.batch > 1 && one ? `${(r.perCpuSecond / one.perCpuSecond).toFixed(2)}×` : '';
    console.log(`${r.layout.padEnd(7)} ${String(r.batch).padStart(5)}  ${r.interrupts.padEnd(8)}  ${String(Math.round(r.perSecond)).padStart(9)}  `
      + `${(r.perSecond / baseline.perSecond).toFixed(2)}×  ${String(Math.round(r.perCpuSecond)).padStart(10)}  ${(r.perCpuSecond / baseline.perCpuSecond).toFixed(2)}×  ${gain}`);
  }
  // The peer: the driver's rings alone against a device that does nothing (null-device.ts), same run.
  const bounds: DriverOnly[] = [];
  for (const batch of peer ? [1, 32] : []) {
    for (const layout of ['split', 'packed'] as const) {
      if (!results.some((r) => r.layout === layout && r.batch === batch)) continue;
      bounds.push({ layout, batch, ...measureDriverOnly(layout, batch, seconds) });
    }
  }
  if (bounds.length > 0) {
    console.log('\ndriver-only bound (same rings, a device that does nothing, no event loop or promises):');
    console.log('layout  batch      req/s   req/cpu-s  full path / bound (per CPU-s, best delivery)');
  }
  for (const b of bounds) {
    const best = Math.max(...results.filter((r) => r.layout === b.layout && r.batch === b.batch).map((r) => r.perCpuSecond));
    console.log(`${b.layout.padEnd(7)} ${String(b.batch).padStart(5)}  ${String(Math.round(b.perSecond)).padStart(9)}  ${String(Math.round(b.perCpuSecond)).padStart(10)}  ${(best / b.perCpuSecond).toFixed(3)}`);
  }
  if (json) console.log(JSON.stringify({ seconds, results, driverOnly: bounds }));
}

if (isMain(import.meta.url)) await main();

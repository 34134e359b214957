// Driver benchmark on the reference device: blk requests per second (4 KiB reads at queue depth 1
// and 32) and net frames per second (64 B and 1500 B, sent with up to 32 in flight, each counted
// when it has come back on the receive side). Each figure is also printed as a ratio against the
// blk QD1 baseline measured in this same run, because absolute numbers on a shared machine vary.
//
// blk read() loops: `depth` loops each awaiting one BlkDriver.read() at a time, polling (the
// request pattern of bench/vm-blk.ts, which goes through read()'s one-request path); at QD32 also
// through readInto() (into each loop's own buffer) and readDma() (into DMA memory), which tells
// what read()'s new ArrayBuffer per result costs.
//
//   npm run build && node dist/bench/drivers.js [SECONDS] [--json]     default 1.5 s per case

import { createSimDevice } from '../lib/sim/index.js';
import { VirtioPciTransport } from '../lib/transport/pci/transport.js';
import { BlkDriver } from '../drivers/blk/index.js';
import { NetDriver } from '../drivers/net/index.js';
import { benchProgram, cliArgs, isMain, jsonOption, parseWith, secondsArgument } from './cli.js';

interface Result {
  name: string;
  perSecond: number;
}

async function timed(seconds: number, step: () => Promise<number>): Promise<number> {
  for (let i = 0; i < 200; i++) await step(); // warm up the JIT
  let done = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < until) done += await step();
  return done / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function blk(depth: number, seconds: number): Promise<Result> {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 65536 });
  const drv = await BlkDriver.open(new VirtioPciTransport(sim.fn), { depth });
  const ranges = Array.from({ length: depth }, (_, i) => ({ sector: i * 8, sectors: 8 }));
  const perSecond = await timed(seconds, async () => (await drv.readMany(ranges)).length);
  await drv.close();
  return { name: `blk 4 KiB read, QD${depth}`, perSecond };
}

/**
 * `depth` loops each awaiting one read at a time (the shape of bench/vm-blk.ts), with polling:
 * through read() (a new ArrayBuffer per result), readInto() (copied into the loop's own buffer) or
 * readDma() (the device writes into the loop's DMA memory, no copy).
 */
async function blkLoops(depth: number, seconds: number, how: 'read' | 'readInto' | 'readDma' = 'read'): Promise<Result> {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 65536 });
  const drv = await BlkDriver.open(new VirtioPciTransport(sim.fn), { depth, interrupts: 'poll' });
  let x = 0x9e3779b9;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % 8192) * 8;
  };
  const own = Array.from({ length: depth }, () => new Uint8Array(4096));
  const dma = how === 'readDma' ? drv.device.dma.alloc(depth * 4096) : null;
  const perSecond = await timed(seconds, async () => {
    await Promise.all(Array.from({ length: depth }, async (_, loop) => {
      for (let i = 0; i < 16; i++) {
        if (how === 'read') await drv.read(next(), 8);
        else if (how === 'readInto') await drv.readInto(next(), 8, own[loop]!);
        else await drv.readDma(next(), 8, dma!, loop * 4096);
      }
    }));
    return 16 * depth;
  });
  await drv.close();
  return { name: `blk ${how}() loops, QD${depth}`, perSecond };
}

async function net(size: number, seconds: number): Promise<Result> {
  const sim = createSimDevice({ type: 'net' });
  const drv = await NetDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 256 });
  let received = 0;
  drv.onFrame(() => received++);
  const frame = new Uint8Array(size).fill(0x5a);
  const burst = 32;
  const perSecond = await timed(seconds, async () => {
    const before = received;
    await Promise.all(Array.from({ length: burst }, () => drv.send(frame)));
    while (received - before < burst) await new Promise((r) => setImmediate(r));
    return burst;
  });
  await drv.close();
  return { name: `net ${size} B frames`, perSecond };
}

/** The command line: [SECONDS] [--json]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { seconds: number; json: boolean } {
  const program = benchProgram('drivers', 'BlkDriver reads and NetDriver frames per second on the reference device, as ratios to blk QD1 of the same run.',
    'Run: npm run bench:drivers -- [SECONDS] [--json]')
    .addArgument(secondsArgument(1.5, 'seconds per case'))
    .addOption(jsonOption());
  const { opts, args } = parseWith(program, argv);
  return { seconds: args[0] as number, json: opts.json === true };
}

async function main(): Promise<void> {
  const { seconds, json } = cliArgs(parseArgs);
  const results = [await blk(1, seconds), await blk(32, seconds), await net(64, seconds), await net(1500, seconds),
    await blkLoops(1, seconds), await blkLoops(32, seconds), await blkLoops(32, seconds, 'readInto'), await blkLoops(32, seconds, 'readDma')];
  const baseline = results[0]!.perSecond;
  console.log(`driver benchmark, ${seconds} s per case; baseline = blk 4 KiB read QD1 (${Math.round(baseline)} req/s)`);
  console.log('case                        per second   ratio');
  for (const r of results) console.log(`${r.name.padEnd(26)}  ${String(Math.round(r.perSecond)).padStart(10)}  ${(r.perSecond / baseline).toFixed(2)}×`);
  if (json) console.log(JSON.stringify({ seconds, results }));
}

if (isMain(import.meta.url)) await main();

// vhost-vdpa in the test VM's vdpa profile (Linux 6.12, the kernel's vdpa_sim_blk on
// /dev/vhost-vdpa-N, scripts/vm/vdpa.mjs), one boot:
//   pause   stop (VHOST_VDPA_SUSPEND, GET_VRING_BASE) → snapshot → reinit (SET_VRING_BASE …
//           DRIVER_OK) on vdpa_sim blk0 with 4 requests in flight at every stop, median and p99;
//           beside it, in the same process, the same cycle on the reference device (sim:blk with
//           the proposal's STOP + RING_STATE, and with virtio 1.4 SUSPEND) — the peer
//   iops    BlkDriver 4 KiB random reads at QD1 and QD32 on blk0, call-eventfd interrupts and
//           polling (vdpa_sim_blk serves from a RAM disk in a kernel work item)
// Ratios: vdpa_sim pause / reference-device pause, from this one run.
//
//   npm run bench:vm-vdpa                      build, boot the vdpa profile, defaults
//   npm run bench:vm-vdpa -- 2 100 --json      2 s per IOPS figure, 100 pause cycles, a JSON line

import fs from 'node:fs';
import { BlkDriver } from '../drivers/blk/index.js';
import { openTransport } from '../lib/open.js';
import type { Mechanism } from '../lib/virtio/snapshot/index.js';
import { benchProgram, cliArgs, countArgument, isMain, jsonOption, parseWith, secondsArgument } from './cli.js';

const BLOCK = 4096;
const SECTORS = BLOCK / 512;

interface PauseRow { device: string; mechanism: Mechanism; cycles: number; medianMs: number; p99Ms: number }
interface IopsRow { device: string; interrupts: 'msix' | 'poll'; depth: number; perSecond: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The vdpa_sim block device's address from the profile's map (/run/vdpa-devices.json). */
function vdpaBlk(name: string): string {
  const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as { name: string; dev: string }[];
  const d = devices.find((x) => x.name === name);
  if (!d) throw new Error(`${name} is not in /run/vdpa-devices.json (boot the vdpa profile)`);
  return `vhost-vdpa:${d.dev}`;
}

/** stop → snapshot → reinit with 4 reads in flight, `cycles` times; the pause is stop() to reinit()'s end (DRIVER_OK). */
async function pause(address: string, mechanism: Mechanism, cycles: number): Promise<PauseRow> {
  const dev = await openTransport(address.startsWith('sim:') ? `${address}&capacity=16384` : address);
  const blk = await BlkDriver.open(dev.transport, { layout: 'split', depth: 8 });
  try {
    const times: number[] = [];
    for (let c = 0; c < cycles + 5; c++) {
      const inFlight = Array.from({ length: 4 }, (_, i) => blk.read(((c * 4 + i) * SECTORS) % (blk.capacitySectors - SECTORS), SECTORS));
      const start = process.hrtime.bigint();
      await blk.stop({ mechanism });
      await blk.reinit(blk.snapshot());
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (c >= 5) times.push(ms); // the first cycles warm the JIT
      await Promise.all(inFlight);
    }
    times.sort((a, b) => a - b);
    return { device: address.replace(/\?.*/, ''), mechanism, cycles, medianMs: percentile(times, 50), p99Ms: percentile(times, 99) };
  } finally {
    await blk.close();
  }
}

async function iops(address: string, interrupts: 'msix' | 'poll', depth: number, seconds: number): Promise<IopsRow> {
  const dev = await openTransport(address);
  const blk = await BlkDriver.open(dev.transport, { layout: 'split', interrupts: interrupts === 'poll' ? 'poll' : 'auto', depth, maxTransfer: BLOCK });
  try {
    const blocks = Math.floor(blk.capacitySectors / SECTORS);
    let x = depth * 7919 + 1;
    const next = (): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return ((x >>> 0) % blocks) * SECTORS;
    };
    for (let i = 0; i < 300; i += depth) await Promise.all(Array.from({ length: depth }, () => blk.read(next(), SECTORS)));
    let done = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(seconds * 1e9));
    await Promise.all(Array.from({ length: depth }, async () => {
      while (process.hrtime.bigint() < end) {
        await blk.read(next(), SECTORS);
        done++;
      }
    }));
    return { device: address, interrupts: blk.device.interruptMode, depth, perSecond: done / (Number(process.hrtime.bigint() - start) / 1e9) };
  } finally {
    await blk.close();
  }
}

/** The command line: [SECONDS] [CYCLES] [--json]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { seconds: number; cycles: number; json: boolean } {
  const program = benchProgram('vm-vdpa', "In the test VM's vdpa profile: the pause (stop → snapshot → reinit) on vdpa_sim_blk against the reference device, and 4 KiB random reads at QD1 and QD32 on it.",
    'Run: npm run bench:vm-vdpa -- [SECONDS] [CYCLES] [--json]   (boots the vdpa profile; the script runs in the VM)')
    .addArgument(secondsArgument(3, 'seconds per IOPS figure'))
    .addArgument(countArgument('cycles', 'stop → snapshot → reinit cycles per pause figure', 200))
    .addOption(jsonOption());
  const { opts, args } = parseWith(program, argv);
  return { seconds: args[0] as number, cycles: args[1] as number, json: opts.json === true };
}

async function main(): Promise<void> {
  const { seconds, cycles, json } = cliArgs(parseArgs);
  const blk0 = vdpaBlk('blk0');

  const pauses: PauseRow[] = [];
  for (const [address, mechanism] of [
    ['sim:blk?state=ring-state', 'ring-state'], ['sim:blk?state=suspend', 'suspend'], [blk0, 'backend'],
  ] as const) {
    const row = await pause(address, mechanism, cycles);
    pauses.push(row);
    process.stderr.write(`  pause ${row.device} ${row.mechanism}: median ${row.medianMs.toFixed(3)} ms, p99 ${row.p99Ms.toFixed(3)} ms\n`);
  }
  const rates: IopsRow[] = [];
  for (const interrupts of ['msix', 'poll'] as const) {
    for (const depth of [1, 32]) {
      const row = await iops(blk0, interrupts, depth, seconds);
      rates.push(row);
      process.stderr.write(`  ${blk0} ${row.interrupts} QD${depth}: ${Math.round(row.perSecond)} req/s\n`);
    }
  }

  const vdpa = pauses.find((p) => p.mechanism === 'backend')!;
  console.log(`vhost-vdpa on vdpa_sim_blk (Linux ${fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}), one boot`);
  console.log(`pause: stop → snapshot → reinit (DRIVER_OK), 4 reads in flight, ${cycles} cycles`);
  console.log('device                    mechanism    median ms   p99 ms   vdpa_sim / this (median, p99)');
  for (const p of pauses) {
    console.log(`${p.device.padEnd(24)}  ${p.mechanism.padEnd(10)}  ${p.medianMs.toFixed(3).padStart(9)}  ${p.p99Ms.toFixed(3).padStart(7)}   ` +
      `${(vdpa.medianMs / p.medianMs).toFixed(2)}× / ${(vdpa.p99Ms / p.p99Ms).toFixed(2)}×`);
  }
  console.log(`4 KiB random reads on ${blk0}, ${seconds} s each`);
  console.log('interrupts  QD     req/s');
  for (const r of rates) console.log(`${r.interrupts.padEnd(10)}  ${String(r.depth).padStart(2)}  ${String(Math.round(r.perSecond)).padStart(8)}`);
  if (json) console.log(JSON.stringify({ seconds, cycles, pauses, rates }));
}

if (isMain(import.meta.url)) main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

// virtio-blk in the test VM, one boot, the same QEMU devices, three drivers: 4 KiB random reads at
// queue depth 1 (one read, wait, repeat) and 32, on the split-ring disk (0000:01:00.0) and the
// packed-ring disk (0000:02:00.0, packed=on):
//   uvirtio    BlkDriver over VFIO, with MSI-X completions, with MSI-X plus poll-then-sleep
//              (hybrid: OpenOptions.hybridPollUs, --hybrid-us below) and with polling, through read()
//              (which returns a copy) and through readDma() (into the caller's DMA memory, as the C peer)
//   C          bench/c/vfio-blk.c, a minimal driver over VFIO (the peer for polling), built with gcc
//              on the host by scripts/vm/peers.mjs and put in the image as /usr/local/bin/vfio-blk; also
//              run sleeping in read(2) on its MSI-X eventfd (c-msix): the shortest user-space
//              interrupt path over VFIO, shown beside uvirtio's MSI-X (not a goal)
//   Linux      the kernel's virtio_blk with fio (libaio, O_DIRECT; the peer for MSI-X): the device is
//              unbound from vfio-pci, bound to virtio-pci for the fio run, then given back to vfio-pci
// Absolute numbers under TCG on a shared machine vary by ±30 %, so the figures that matter are the
// ratios from this one boot: uvirtio polling / C and uvirtio MSI-X (and hybrid) / Linux. The baseline (uvirtio,
// QD1, MSI-X, split) is measured first and again at the end; the drift between the two says how far
// the ratios can be trusted.
//
//   npm run bench:vm                     build, boot the VM with the peers, run with the defaults
//   npm run bench:vm -- 3 --json         3 s per configuration, and a JSON line at the end
//   npm run vm -- --peers -- node dist/bench/vm-blk.js [SECONDS] [--json] [--only uvirtio|c|linux]... [--hybrid-us N] [--spin-us N] [--warmup-ms N] [--queues N] [--poll-budget half|N]

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { Option } from 'commander';
import { BlkDriver } from '../drivers/blk/index.js';
import { openTransport } from '../lib/open.js';
import type { Layout } from '../lib/virtio/queue/types.js';
import { DEFAULT_POLL_SPIN_US, MAX_HYBRID_POLL_US, MAX_POLL_SPIN_US } from '../lib/virtio/device.js';
import { POLL_BUDGET, type PollBudget } from '../lib/virtio/busy-poll.js';
import { benchProgram, cliArgs, intIn, isMain, jsonOption, parseWith, repeatableChoice, secondsArgument, valueOf } from './cli.js';

const BDF: Record<Layout, string> = { split: '0000:01:00.0', packed: '0000:02:00.0' };
const BLOCK = 4096;
const SECTORS = BLOCK / 512;
const DEPTHS = [1, 32] as const;
const LAYOUTS = ['split', 'packed'] as const;
const C_PEER = '/usr/local/bin/vfio-blk';
const FIO = '/usr/local/bin/fio';
const KERNEL_MODULES = '/etc/uvirtio/virtio-blk-modules';

type Driver = 'uvirtio-msix' | 'uvirtio-msix-dma' | 'uvirtio-hybrid' | 'uvirtio-poll' | 'uvirtio-poll-dma' | 'c-poll' | 'c-msix' | 'linux-fio';
/**
 * uvirtio's delivery modes: MSI-X only, MSI-X with poll-then-sleep (OpenOptions.hybridPollUs),
 * polling; the -dma modes read with BlkDriver.readDma (into the caller's DMA memory, no copy: what
 * the C peer does, and what fio's O_DIRECT reads do).
 */
type Mode = 'msix' | 'msix-dma' | 'hybrid' | 'poll' | 'poll-dma';
/** The driver's settings from the command line (parseArgs). */
interface Tuning {
  /** The poll-then-sleep window of the hybrid mode, µs (--hybrid-us N): a few times the polled QD1 latency in this VM. */
  hybridUs: number;
  /** Traffic before each uvirtio configuration's window, ms (--warmup-ms N). */
  warmupMs: number;
  /** OpenOptions.pollSpinUs for polling and hybrid (--spin-us N; default: the SDK's). */
  spinUs: number | undefined;
  /**
   * BlkOpenOptions.queues (--queues N; default 1): the C peer drives queue 0 only and fio runs one
   * job (one submitting CPU, so one of virtio_blk's queues), so one queue compares like with like;
   * the packed disk has two, and over two queues a driver overlaps its work on one queue with the
   * device's on the other.
   */
  queues: number;
  /** OpenOptions.pollBudget for polling and hybrid (--poll-budget half|N; default: the SDK's). */
  pollBudget: PollBudget | undefined;
}

/** The command line. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): Tuning & { seconds: number; json: boolean; only: ('uvirtio' | 'c' | 'linux')[] } {
  const program = benchProgram('vm-blk', 'virtio-blk in the test VM, one boot: 4 KiB random reads at QD1 and QD32, split and packed, uvirtio (MSI-X, hybrid, polling; read() and readDma()) against a C driver over VFIO and Linux virtio_blk with fio.',
    'Run: npm run bench:vm -- [SECONDS] [options]   (builds, boots the VM with the peers; the script runs in the VM)\n' +
    '     npm run vm -- --peers -- node dist/bench/vm-blk.js [SECONDS] [options]')
    .addArgument(secondsArgument(2))
    .addOption(jsonOption())
    .addOption(repeatableChoice('--only <driver>', ['uvirtio', 'c', 'linux'] as const, 'measure only these drivers'))
    .addOption(new Option('--hybrid-us <µs>', "the hybrid mode's poll-then-sleep window (OpenOptions.hybridPollUs), µs")
      .argParser(valueOf('--hybrid-us', intIn(0, MAX_HYBRID_POLL_US, 'µs'))).default(4000))
    .addOption(new Option('--spin-us <µs>', `OpenOptions.pollSpinUs for polling and hybrid, µs; default: the SDK's (${DEFAULT_POLL_SPIN_US} µs on a device off the driver's thread)`)
      .argParser(valueOf('--spin-us', intIn(0, MAX_POLL_SPIN_US, 'µs'))))
    .addOption(new Option('--warmup-ms <ms>', "traffic before each uvirtio configuration's timed window, ms")
      .argParser(valueOf('--warmup-ms', intIn(0, 600_000, 'ms'))).default(3000))
    .addOption(new Option('--queues <n>', "request queues uvirtio uses (BlkOpenOptions.queues; the C peer drives queue 0, fio runs one job)")
      .argParser(valueOf('--queues', intIn(1, 65_535))).default(1))
    .addOption(new Option('--poll-budget <half|n>', "OpenOptions.pollBudget for polling and hybrid: used elements per turn, half of those in flight, or 0 for all; default: the SDK's (half off the driver's thread)")
      .argParser(valueOf('--poll-budget', POLL_BUDGET)));
  const { opts, args } = parseWith(program, argv);
  return {
    seconds: args[0] as number, json: opts.json === true, only: opts.only as ('uvirtio' | 'c' | 'linux')[],
    hybridUs: opts.hybridUs as number, warmupMs: opts.warmupMs as number, spinUs: opts.spinUs as number | undefined,
    queues: opts.queues as number, pollBudget: opts.pollBudget as PollBudget | undefined,
  };
}

interface Result {
  driver: Driver;
  layout: Layout;
  depth: number;
  perSecond: number;
  /** Mean microseconds from submission to completion (uvirtio and fio; the C peer does not time each request). */
  latencyUs?: number;
  /** C peer: notifications written per request (the rest the device suppressed). */
  kicksPerRequest?: number;
  /**
   * CPU time of the driver's process per request, µs (user + system, over the timed window):
   * uvirtio from process.cpuUsage(), the C peer from getrusage(2), fio from its usr_cpu + sys_cpu.
   * Polling spends a whole CPU by design; an interrupt path's figure says what its speed costs.
   */
  cpuUsPerRequest?: number;
}

/** A small xorshift: the same block sequence in every configuration. */
function blocks(seed: number, count: number): () => number {
  let x = seed | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % count) * SECTORS;
  };
}

async function uvirtio(layout: Layout, depth: number, mode: Mode, seconds: number, t: Tuning): Promise<Result> {
  const dev = await openTransport(`vfio:${BDF[layout]}`);
  const interrupts = mode === 'poll' || mode === 'poll-dma' ? 'poll' : 'msix';
  const blk = await BlkDriver.open(dev.transport, { layout, interrupts, depth, maxTransfer: BLOCK, queueSize: 256, hybridPollUs: mode === 'hybrid' ? t.hybridUs : 0, pollSpinUs: t.spinUs, pollBudget: t.pollBudget, queues: t.queues });
  try {
    if (blk.device.interruptMode !== interrupts) throw new Error(`${BDF[layout]} came up in ${blk.device.interruptMode} mode, not ${interrupts}`);
    const next = blocks(depth * 7919 + 1, Math.floor(blk.capacitySectors / SECTORS));
    // -dma: each reader reads into its own 4 KiB of one DMA region (BlkDriver.readDma, no copy).
    const region = mode === 'poll-dma' || mode === 'msix-dma' ? blk.device.dma.alloc(depth * BLOCK) : undefined;
    const readerOf = (r: number): (() => Promise<unknown>) => (region ? () => blk.readDma(next(), SECTORS, region, r * BLOCK) : () => blk.read(next(), SECTORS));
    // Warm up the JIT and QEMU's caches before timing: by time, not by count. Under TCG TurboFan
    // takes 5–45 ms per function on the other vCPU (which QEMU's I/O thread needs too); after a
    // warm-up of 300 reads it was still compiling through the window (1–1.8 s of the V8 workers'
    // CPU in a 3 s window; 0.2 s after 3 s of warm-up: bench/README.md), so the figure measured
    // the JIT as much as the driver.
    let warm = true;
    const warmTimer = setTimeout(() => { warm = false; }, t.warmupMs);
    await Promise.all(Array.from({ length: depth }, async (_, r) => {
      const read = readerOf(r);
      while (warm) await read();
    }));
    clearTimeout(warmTimer);
    let done = 0;
    // The window ends by a timer, not a clock read per request (in the TCG guest a clock read costs
    // 3–4 µs, HPET or TSC alike); the C peer reads it every 64 completions. The mean latency of this
    // closed loop is depth × elapsed / done (Little's law).
    let running = true;
    const cpu = process.cpuUsage();
    const start = performance.now();
    const timer = setTimeout(() => { running = false; }, seconds * 1e3);
    const reader = async (_: unknown, r: number): Promise<void> => {
      const read = readerOf(r);
      while (running) {
        await read();
        done++;
      }
    };
    await Promise.all(Array.from({ length: depth }, reader));
    clearTimeout(timer);
    const elapsed = (performance.now() - start) / 1e3;
    const used = process.cpuUsage(cpu);
    return { driver: `uvirtio-${mode}`, layout, depth, perSecond: done / elapsed, latencyUs: (depth * elapsed * 1e6) / done, cpuUsPerRequest: (used.user + used.system) / done };
  } finally {
    await blk.close();
  }
}

function runTool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${(r.stderr || r.stdout).trim().slice(-500)}`);
  return r.stdout;
}

/** The C peer: polling (the peer of uvirtio's polling) or sleeping in read(2) on its MSI-X eventfd (the floor of any user-space interrupt path over VFIO). */
function cPeer(layout: Layout, depth: number, seconds: number, mode: 'poll' | 'msix'): Result {
  const out = runTool(C_PEER, [BDF[layout], layout, String(depth), String(seconds), String(depth * 7919 + 1), mode]);
  const { iops, done, kicks, cpuUs } = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { iops?: number; done?: number; kicks?: number; cpuUs?: number };
  if (typeof iops !== 'number') throw new Error(`vfio-blk printed no iops: ${out}`);
  return { driver: `c-${mode}`, layout, depth, perSecond: iops, kicksPerRequest: done && kicks !== undefined ? kicks / done : undefined,
    cpuUsPerRequest: done && cpuUs !== undefined ? cpuUs / done : undefined };
}

const sysfs = (bdf: string, file: string): string => `/sys/bus/pci/devices/${bdf}/${file}`;

/** Gives `bdf` to the kernel's virtio-pci (virtio_blk on top); returns its block device. */
function bindKernel(bdf: string): string {
  if (fs.existsSync(sysfs(bdf, 'driver'))) fs.writeFileSync(sysfs(bdf, 'driver/unbind'), bdf);
  fs.writeFileSync(sysfs(bdf, 'driver_override'), '\n');
  for (const mod of fs.readFileSync(KERNEL_MODULES, 'utf8').split('\n').filter(Boolean)) {
    const name = mod.slice(mod.lastIndexOf('/') + 1).replace(/\.ko$/, '').replace(/-/g, '_');
    if (!fs.existsSync(`/sys/module/${name}`)) runTool('insmod', [mod]);
  }
  // Loading virtio_pci probes the unbound device by itself; once loaded, probe it explicitly.
  if (!fs.existsSync(sysfs(bdf, 'driver'))) fs.writeFileSync('/sys/bus/pci/drivers_probe', bdf);
  for (let i = 0; i < 500; i++) {
    const virtio = fs.readdirSync(sysfs(bdf, '')).find((f) => /^virtio\d+$/.test(f));
    const blockDir = virtio ? sysfs(bdf, `${virtio}/block`) : '';
    if (virtio && fs.existsSync(blockDir)) {
      const name = fs.readdirSync(blockDir)[0];
      if (name && fs.existsSync(`/dev/${name}`)) return `/dev/${name}`;
    }
    spawnSync('sleep', ['0.01']);
  }
  throw new Error(`${bdf} bound to virtio-pci but no block device appeared`);
}

/** Gives `bdf` back to vfio-pci. */
function bindVfio(bdf: string): void {
  if (fs.existsSync(sysfs(bdf, 'driver'))) fs.writeFileSync(sysfs(bdf, 'driver/unbind'), bdf);
  fs.writeFileSync(sysfs(bdf, 'driver_override'), 'vfio-pci');
  fs.writeFileSync('/sys/bus/pci/drivers_probe', bdf);
  const driver = fs.realpathSync(sysfs(bdf, 'driver'));
  if (!driver.endsWith('/vfio-pci')) throw new Error(`${bdf} went to ${driver}, not vfio-pci`);
}

interface FioJob { read: { iops: number; total_ios?: number; lat_ns?: { mean: number }; clat_ns?: { mean: number } }; usr_cpu?: number; sys_cpu?: number; job_runtime?: number }

function fio(dev: string, layout: Layout, depth: number, seconds: number): Result {
  const out = runTool(FIO, ['--name=randread', `--filename=${dev}`, '--direct=1', '--ioengine=libaio', '--rw=randread',
    `--bs=${BLOCK}`, `--iodepth=${depth}`, `--runtime=${seconds}s`, '--ramp_time=300ms', '--time_based', '--numjobs=1',
    '--output-format=json']);
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: FioJob[] }).jobs[0];
  if (!job) throw new Error('fio printed no job');
  const lat = job.read.lat_ns ?? job.read.clat_ns;
  // usr_cpu and sys_cpu are percentages of job_runtime (ms); the kernel's interrupt and completion work runs outside fio's own time and is not in them.
  const cpuMs = job.usr_cpu !== undefined && job.sys_cpu !== undefined && job.job_runtime ? ((job.usr_cpu + job.sys_cpu) / 100) * job.job_runtime : undefined;
  return { driver: 'linux-fio', layout, depth, perSecond: job.read.iops, latencyUs: lat ? lat.mean / 1e3 : undefined,
    cpuUsPerRequest: cpuMs !== undefined && job.read.total_ios ? (cpuMs * 1e3) / job.read.total_ios : undefined };
}

function find(results: Result[], driver: Driver, layout: Layout, depth: number): Result | undefined {
  return results.find((r) => r.driver === driver && r.layout === layout && r.depth === depth);
}

async function main(): Promise<void> {
  const t = cliArgs(parseArgs);
  const { seconds, only } = t;
  const want = (d: 'uvirtio' | 'c' | 'linux'): boolean => !only.length || only.includes(d);
  const skipped: string[] = [];
  const results: Result[] = [];
  const say = (r: Result): void => {
    results.push(r);
    process.stderr.write(`  ${r.driver} ${r.layout} QD${r.depth}: ${Math.round(r.perSecond)} req/s\n`);
  };

  // A throwaway round first: the first configuration otherwise pays for the JIT and cold caches.
  await uvirtio('split', 1, 'msix', Math.min(seconds, 1), t);
  await uvirtio('split', 1, 'poll', Math.min(seconds, 1), t);
  const baseline = await uvirtio('split', 1, 'msix', seconds, t);
  // Per layout, uvirtio's modes and then its peers, so that a peer is measured within minutes of
  // the figures it is divided into (the host's load moves over a boot).
  const cMissing = !fs.existsSync(C_PEER);
  const linuxMissing = !fs.existsSync(FIO) || !fs.existsSync(KERNEL_MODULES);
  if (want('c') && cMissing) skipped.push(`C peer: ${C_PEER} is not in the image (boot with --peers)`);
  if (want('linux') && linuxMissing) skipped.push(`Linux: fio or virtio_blk is not in the image (boot with --peers)`);
  for (const layout of LAYOUTS) {
    if (want('uvirtio')) {
      for (const mode of ['msix', 'msix-dma', 'hybrid', 'poll', 'poll-dma'] as const) {
        for (const depth of DEPTHS) say(layout === 'split' && depth === 1 && mode === 'msix' ? baseline : await uvirtio(layout, depth, mode, seconds, t));
      }
    }
    if (want('c') && !cMissing) for (const mode of ['poll', 'msix'] as const) for (const depth of DEPTHS) say(cPeer(layout, depth, seconds, mode));
    if (want('linux') && !linuxMissing) {
      const dev = bindKernel(BDF[layout]);
      try {
        for (const depth of DEPTHS) say(fio(dev, layout, depth, seconds));
      } finally {
        bindVfio(BDF[layout]);
      }
    }
  }
  const again = await uvirtio('split', 1, 'msix', seconds, t);
  const drift = again.perSecond / baseline.perSecond - 1;

  const ratios: { name: string; layout: Layout; depth: number; value: number; goal: number }[] = [];
  for (const layout of LAYOUTS) {
    for (const depth of DEPTHS) {
      const poll = find(results, 'uvirtio-poll', layout, depth);
      const c = find(results, 'c-poll', layout, depth);
      if (poll && c) ratios.push({ name: 'uvirtio polling / C', layout, depth, value: poll.perSecond / c.perSecond, goal: 0.7 });
      const dma = find(results, 'uvirtio-poll-dma', layout, depth);
      if (dma && c) ratios.push({ name: 'polling, readDma / C', layout, depth, value: dma.perSecond / c.perSecond, goal: 0.7 });
    }
  }
  for (const layout of LAYOUTS) {
    for (const depth of DEPTHS) {
      const msix = find(results, 'uvirtio-msix', layout, depth);
      const linux = find(results, 'linux-fio', layout, depth);
      if (msix && linux) ratios.push({ name: 'uvirtio MSI-X / Linux', layout, depth, value: msix.perSecond / linux.perSecond, goal: depth === 1 ? 1 : 0 });
      const msixDma = find(results, 'uvirtio-msix-dma', layout, depth);
      if (msixDma && linux) ratios.push({ name: 'MSI-X, readDma / Linux', layout, depth, value: msixDma.perSecond / linux.perSecond, goal: depth === 1 ? 1 : 0 });
      // Not a goal: how far uvirtio's interrupt path is from the shortest one over VFIO, and how far that is from the kernel's.
      const cMsix = find(results, 'c-msix', layout, depth);
      if (msixDma && cMsix) ratios.push({ name: 'MSI-X, readDma / C MSI-X', layout, depth, value: msixDma.perSecond / cMsix.perSecond, goal: 0 });
      if (cMsix && linux) ratios.push({ name: 'C MSI-X / Linux', layout, depth, value: cMsix.perSecond / linux.perSecond, goal: 0 });
      const hybrid = find(results, 'uvirtio-hybrid', layout, depth);
      if (hybrid && linux) ratios.push({ name: 'uvirtio hybrid / Linux', layout, depth, value: hybrid.perSecond / linux.perSecond, goal: depth === 1 ? 1 : 0 });
    }
  }

  console.log(`virtio-blk in the test VM, 4 KiB random reads, ${seconds} s per configuration, one boot; hybrid window ${t.hybridUs} µs; ` +
    `poll spin ${t.spinUs ?? 'default'} µs; poll budget ${t.pollBudget ?? 'default'}; uvirtio on ${t.queues} queue(s); ` +
    `warm-up ${t.warmupMs} ms per configuration`);
  console.log(`baseline uvirtio QD1 MSI-X split: ${Math.round(baseline.perSecond)} req/s first, ${Math.round(again.perSecond)} req/s at the end ` +
    `(drift ${drift >= 0 ? '+' : ''}${(drift * 100).toFixed(0)} %)`);
  console.log('driver            layout  QD     req/s   mean µs   CPU µs/req   vs baseline');
  for (const r of results) {
    console.log(`${r.driver.padEnd(16)}  ${r.layout.padEnd(6)}  ${String(r.depth).padStart(2)}  ${String(Math.round(r.perSecond)).padStart(8)}  ` +
      `${(r.latencyUs === undefined ? '-' : r.latencyUs.toFixed(0)).padStart(8)}   ${(r.cpuUsPerRequest === undefined ? '-' : r.cpuUsPerRequest.toFixed(1)).padStart(10)}   ` +
      `${(r.perSecond / baseline.perSecond).toFixed(2).padStart(6)}×` +
      `${r.kicksPerRequest === undefined ? '' : `   ${r.kicksPerRequest.toFixed(2)} kicks/request`}`);
  }
  if (ratios.length) {
    console.log('ratio                     layout  QD   ratio   goal');
    for (const q of ratios) {
      console.log(`${q.name.padEnd(24)}  ${q.layout.padEnd(6)}  ${String(q.depth).padStart(2)}  ${q.value.toFixed(2).padStart(5)}×  ` +
        `${q.goal ? `≥ ${q.goal}× ${q.value >= q.goal ? 'met' : 'NOT met'}` : '-'}`);
    }
  }
  for (const s of skipped) console.log(`skipped: ${s}`);
  if (t.json) {
    console.log(JSON.stringify({ seconds, queues: t.queues, pollBudget: t.pollBudget ?? 'default', baseline: baseline.perSecond, baselineAgain: again.perSecond, drift, results, ratios, skipped }));
  }
}

if (isMain(import.meta.url)) main().catch((e: unknown) => {
  console.error(`vm-blk: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

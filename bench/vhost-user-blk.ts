// vhost-user blk benchmark against a real qemu-storage-daemon, with `qemu-img bench` on the same
// image as the back-end's ceiling (the peer), all in one run:
//   - 4 KiB reads per second at queue depth 1 and 32 through uvirtio's BlkDriver (call-eventfd
//     interrupts and polling) and through `qemu-img bench` (QEMU's block layer with no vhost-user
//     hop and no guest driver: the most the daemon's back-end can serve), for the host page cache
//     ('buffered': daemon cache.direct=off aio=threads, qemu-img -t writeback -i threads) and for
//     O_DIRECT ('direct': daemon cache.direct=on aio=native, qemu-img -t none -i native);
//   - each uvirtio figure as a ratio uvirtio / qemu-img bench of the same cache mode and depth;
//   - CPU time per I/O (µs) of the driver (this Node process, all threads) and of the daemon,
//     from utime+stime in /proc/<pid>/stat read just before and after the timed window, and of
//     qemu-img bench itself (its children times, read by the shell that starts it);
//   - per cache mode and depth, ROUNDS rounds of (peer, uvirtio interrupts, uvirtio polling) closed
//     by one more peer figure: each uvirtio figure is divided by the mean of the two peer figures
//     around it, and the median of those ratios is printed (IOPS and CPU are medians too); the
//     peer's spread says how far the ratios hold on a loaded machine;
//   - the pause of stop (GET_VRING_BASE) → snapshot → reinit on a SECOND daemon (a fresh
//     connection, SET_VRING_BASE), with 8 reads kept in flight: median and p99 over the cycles.
//
// `qemu-img bench` cannot read at random: it steps its offset by -S modulo the image size. Both
// sides therefore read the same sequence — block k·7919 mod 16384 of a 64 MiB image filled with
// random bytes (7919 is prime, so each pass touches every 4 KiB block once, ~31 MiB apart).
//
//   npm run bench:vhost-user
//   node dist/bench/vhost-user-blk.js [seconds per figure, default 2] [pause cycles, default 20] [rounds, default 3] [--json]

import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { BlkDriver } from '../drivers/blk/index.js';
import { openTransport, type OpenedDevice } from '../lib/open.js';
import { eventfdWait } from '../lib/sys/eventfd-watch.js';
import { validateSnapshot } from '../lib/virtio/snapshot/index.js';
import { Daemon, haveDaemon, makeImage, type Image } from '../test/vhost-user/daemon.js';
import { benchProgram, cliArgs, countArgument, isMain, jsonOption, parseWith, secondsArgument } from './cli.js';

const BLOCK = 4096;
const SECTORS = BLOCK / 512;
const IMAGE_MIB = 64;
/** Blocks between two consecutive reads (prime, so coprime with the power-of-two block count). */
const STRIDE = 7919;
const TICK = 100; // USER_HZ: /proc/<pid>/stat counts clock ticks of 1/100 s on Linux

type Cache = 'buffered' | 'direct';

/** One timed figure. */
type Figure = Omit<Row, 'ratio' | 'rounds'>;

interface Row {
  cache: Cache;
  depth: number;
  /** 'qemu-img bench' (the peer) or uvirtio's BlkDriver with call-eventfd interrupts or polling. */
  driver: 'qemu-img bench' | 'uvirtio interrupts' | 'uvirtio polling';
  /** 4 KiB reads completed per second. */
  iops: number;
  /**
   * Median over the rounds of iops / the mean of the two qemu-img bench figures that bracket it
   * (same cache mode and depth); 1 for the peer itself. iops and the CPU figures are medians too.
   */
  ratio: number;
  /** Each round's figure (for the peer: one more than the rounds, as it brackets each of them). */
  rounds: { iops: number; ratio: number }[];
  /** CPU µs per I/O of the driver side: this Node process, or qemu-img bench as a whole. */
  driverCpuUs: number;
  /** CPU µs per I/O of qemu-storage-daemon (null for qemu-img bench, which has no daemon). */
  daemonCpuUs: number | null;
  /**
   * uvirtio with interrupts: BlkDriver.missedInterrupts summed over the rounds — used elements its
   * watchdog (every 100 ms while requests are in flight) took before a call-eventfd had announced
   * them; under steady traffic most were still on their way, not lost.
   */
  missedInterrupts?: number;
  /** For the peer: (largest − smallest) / median of its figures in this cache mode and depth. */
  peerSpread?: number;
}

/** The stride sequence shared by both sides: block k·STRIDE mod blocks, as qemu-img bench -S steps. */
function strided(blocks: number): () => number {
  let offset = 0;
  return () => {
    const sector = offset * SECTORS;
    offset = (offset + STRIDE) % blocks;
    return sector;
  };
}

/** utime + stime of a process (all its threads), in clock ticks. */
function cpuTicks(pid: number | 'self'): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return Number(f[11]) + Number(f[12]); // fields 14 (utime) and 15 (stime)
}

async function uvirtio(img: Image, d: Daemon, cache: Cache, depth: number, mode: 'auto' | 'poll', seconds: number): Promise<Figure> {
  const dev = await openTransport(d.address);
  const blk = await BlkDriver.open(dev.transport, { depth, interrupts: mode, maxTransfer: BLOCK });
  try {
    const next = strided(img.bytes / BLOCK);
    // Warm up the JIT and the daemon before timing.
    for (let i = 0; i < 1000; i += depth) await Promise.all(Array.from({ length: depth }, () => blk.read(next(), SECTORS)));
    let done = 0;
    const end = performance.now() + seconds * 1000;
    const worker = async (): Promise<void> => {
      while (performance.now() < end) {
        await blk.read(next(), SECTORS);
        done++;
      }
    };
    const self0 = cpuTicks('self');
    const daemon0 = cpuTicks(d.pid);
    const t0 = performance.now();
    await Promise.all(Array.from({ length: depth }, worker));
    const elapsed = (performance.now() - t0) / 1000;
    const selfUs = ((cpuTicks('self') - self0) / TICK) * 1e6;
    const daemonUs = ((cpuTicks(d.pid) - daemon0) / TICK) * 1e6;
    return {
      cache, depth, driver: mode === 'auto' ? 'uvirtio interrupts' : 'uvirtio polling',
      iops: done / elapsed, driverCpuUs: selfUs / done, daemonCpuUs: daemonUs / done,
      ...(mode === 'auto' ? { missedInterrupts: blk.missedInterrupts } : {}),
    };
  } finally {
    await blk.close();
    dev.transport.close();
  }
}

/** One `qemu-img bench` run: its own "Run completed in" time, and its CPU time from bash's `times`. */
function qemuImgRun(img: Image, cache: Cache, depth: number, count: number): Promise<{ seconds: number; cpuSeconds: number }> {
  const args = ['bench', '-f', 'raw', '-c', String(count), '-d', String(depth), '-s', String(BLOCK), '-S', String(STRIDE * BLOCK),
    ...(cache === 'direct' ? ['-t', 'none', '-i', 'native'] : ['-t', 'writeback', '-i', 'threads']), img.file];
  return new Promise((resolve, reject) => {
    // bash's `times` prints the children's user and system time on its second line.
    const child = spawn('bash', ['-c', 'qemu-img "$@" || exit $?; times', 'qemu-img', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const run = /Run completed in ([\d.]+) seconds/.exec(out);
      const last = out.trim().split('\n').at(-1) ?? '';
      const times = [...last.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
      if (code !== 0 || !run || times.length !== 2) return reject(new Error(`qemu-img ${args.join(' ')} failed (${code}): ${out}`));
      resolve({ seconds: Number(run[1]), cpuSeconds: times[0]! + times[1]! });
    });
  });
}

/** A request count that makes one `qemu-img bench` run last about `seconds` (the probe also warms up). */
async function qemuImgCount(img: Image, cache: Cache, depth: number, seconds: number): Promise<number> {
  const probe = await qemuImgRun(img, cache, depth, 4000);
  return Math.max(4000, Math.round((4000 / probe.seconds) * seconds));
}

async function qemuImg(img: Image, cache: Cache, depth: number, count: number): Promise<Figure> {
  const r = await qemuImgRun(img, cache, depth, count);
  return { cache, depth, driver: 'qemu-img bench', iops: count / r.seconds, driverCpuUs: (r.cpuSeconds * 1e6) / count, daemonCpuUs: null };
}

async function pauses(a: Daemon, b: Daemon, cycles: number): Promise<number[]> {
  const src = await openTransport(a.address);
  const dst = await openTransport(b.address, { shareWith: src });
  const blk = await BlkDriver.open(src.transport, { depth: 8 });
  let running = true;
  const traffic = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; running; i++) await blk.read(((w * 997 + i * 31) % 4096) * SECTORS, SECTORS);
  });
  const out: number[] = [];
  let here: OpenedDevice = src;
  for (let c = 0; c < cycles; c++) {
    await new Promise((r) => setTimeout(r, 20)); // traffic runs between the stops
    const there = here === src ? dst : src;
    const t0 = performance.now();
    await blk.stop({ mechanism: 'backend' });
    const snap = validateSnapshot(JSON.parse(JSON.stringify(blk.snapshot())));
    await blk.reinit(snap, { target: there.transport });
    out.push(performance.now() - t0);
    here = there;
  }
  running = false;
  await Promise.all(traffic);
  await blk.close();
  src.transport.close();
  dst.transport.close();
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');

/** The command line: [SECONDS] [CYCLES] [ROUNDS] [--json]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { seconds: number; cycles: number; rounds: number; json: boolean } {
  const program = benchProgram('vhost-user-blk', 'BlkDriver over vhost-user on qemu-storage-daemon against qemu-img bench on the same image (4 KiB reads, QD1 and QD32, buffered and O_DIRECT), then stop → snapshot → reinit onto a second daemon.',
    'Run: npm run bench:vhost-user -- [SECONDS] [CYCLES] [ROUNDS] [--json]')
    .addArgument(secondsArgument(2, 'seconds per figure'))
    .addArgument(countArgument('cycles', 'stop → snapshot → reinit cycles of the pause figure', 20))
    .addArgument(countArgument('rounds', 'rounds of (peer, interrupts, polling) per cache mode and depth', 3))
    .addOption(jsonOption());
  const { opts, args } = parseWith(program, argv);
  return { seconds: args[0] as number, cycles: args[1] as number, rounds: args[2] as number, json: opts.json === true };
}

async function main(): Promise<void> {
  const { seconds, cycles, rounds, json } = cliArgs(parseArgs);
  if (!haveDaemon()) {
    console.log('vhost-user-blk bench: skipped — qemu-storage-daemon not found (apt-get install qemu-system-common)');
    return;
  }
  if (spawnSync('sh', ['-c', 'command -v qemu-img && command -v bash'], { stdio: 'ignore' }).status !== 0) {
    console.log('vhost-user-blk bench: skipped — qemu-img (the peer) or bash not found (apt-get install qemu-utils)');
    return;
  }
  const loadBefore = load();
  const img = makeImage(IMAGE_MIB);
  {
    // Real data everywhere: reads of a sparse file's holes would cost the host nothing.
    const fd = fs.openSync(img.file, 'r+');
    const chunk = Buffer.alloc(1 << 20);
    for (let m = 0; m < IMAGE_MIB; m++) fs.writeSync(fd, randomFillSync(chunk), 0, chunk.length, m << 20);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
  const rows: Row[] = [];
  let pause: number[] = [];
  try {
    for (const cache of ['buffered', 'direct'] as const) {
      const d = await Daemon.start(img, `d-${cache}`, { cache });
      try {
        for (const depth of [1, 32]) {
          // Rounds of peer, interrupts, polling, closed by one more peer figure: each uvirtio
          // figure is compared with the mean of the two peer figures around it.
          const count = await qemuImgCount(img, cache, depth, seconds);
          const peers = [await qemuImg(img, cache, depth, count)];
          const ours: Record<'auto' | 'poll', Figure[]> = { auto: [], poll: [] };
          for (let r = 0; r < rounds; r++) {
            for (const mode of ['auto', 'poll'] as const) ours[mode].push(await uvirtio(img, d, cache, depth, mode, seconds));
            peers.push(await qemuImg(img, cache, depth, count));
          }
          const peerIops = peers.map((p) => p.iops);
          rows.push({
            ...peers[0]!, iops: median(peerIops), driverCpuUs: median(peers.map((p) => p.driverCpuUs)), ratio: 1,
            rounds: peers.map((p) => ({ iops: p.iops, ratio: 1 })),
            peerSpread: (Math.max(...peerIops) - Math.min(...peerIops)) / median(peerIops),
          });
          for (const mode of ['auto', 'poll'] as const) {
            const figs = ours[mode];
            const each = figs.map((f, r) => ({ iops: f.iops, ratio: f.iops / ((peerIops[r]! + peerIops[r + 1]!) / 2) }));
            rows.push({
              ...figs[0]!, iops: median(figs.map((f) => f.iops)), ratio: median(each.map((e) => e.ratio)), rounds: each,
              driverCpuUs: median(figs.map((f) => f.driverCpuUs)), daemonCpuUs: median(figs.map((f) => f.daemonCpuUs!)),
              ...(mode === 'auto' ? { missedInterrupts: figs.reduce((n, f) => n + (f.missedInterrupts ?? 0), 0) } : {}),
            });
          }
        }
      } finally {
        await d.kill();
      }
    }
    const a = await Daemon.start(img, 'a');
    const b = await Daemon.start(img, 'b');
    try {
      pause = (await pauses(a, b, cycles)).sort((x, y) => x - y);
    } finally {
      await a.kill();
      await b.kill();
    }
  } finally {
    img.remove();
  }
  const loadAfter = load();
  console.log(`vhost-user-blk: 4 KiB reads (stride ${STRIDE} blocks over a ${IMAGE_MIB} MiB image), qemu-storage-daemon vs qemu-img bench on the same image, ${seconds} s per figure, ${rounds} rounds (medians)`);
  console.log(`load average ${loadBefore} → ${loadAfter}; ${os.cpus().length} CPUs; ratio = IOPS / qemu-img bench IOPS of the same cache mode and depth`);
  console.log(`call eventfds waited for by: ${eventfdWait().mode} (${eventfdWait().reason})`);
  console.log('cache     QD  driver               IOPS  ratio   driver µs CPU/IO  daemon µs CPU/IO');
  for (const r of rows) {
    console.log(`${r.cache.padEnd(8)} ${String(r.depth).padStart(3)}  ${r.driver.padEnd(18)} ${String(Math.round(r.iops)).padStart(7)}  ${r.ratio.toFixed(2)}×  ${r.driverCpuUs.toFixed(1).padStart(16)}  ${r.daemonCpuUs === null ? '               —' : r.daemonCpuUs.toFixed(1).padStart(16)}`);
  }
  console.log(`peer spread ((max − min) / median of its ${rounds + 1} figures per case): ${rows.filter((r) => r.peerSpread !== undefined).map((r) => `${r.cache} QD${r.depth} ${(r.peerSpread! * 100).toFixed(0)} %`).join(', ')}`);
  console.log(`uvirtio ratio per round: ${rows.filter((r) => r.driver !== 'qemu-img bench').map((r) => `${r.cache} QD${r.depth} ${r.driver.slice(8)} ${r.rounds.map((x) => x.ratio.toFixed(2)).join('/')}`).join('; ')}`);
  const missed = rows.filter((r) => r.missedInterrupts !== undefined);
  console.log(`used elements the driver's watchdog took before their call-eventfd was handled (BlkDriver.missedInterrupts, all rounds; most were still on their way, not lost): ${missed.map((r) => `${r.cache} QD${r.depth} ${r.missedInterrupts}`).join(', ')}`);
  console.log(`stop → snapshot → reinit on the other daemon, ${cycles} cycles, 8 reads in flight: median ${pct(pause, 50).toFixed(2)} ms, p99 ${pct(pause, 99).toFixed(2)} ms, max ${pause.at(-1)!.toFixed(2)} ms`);
  if (json) {
    console.log(JSON.stringify({
      date: new Date().toISOString(), seconds, rounds, imageMiB: IMAGE_MIB, strideBlocks: STRIDE, cpus: os.cpus().length,
      loadAverage: { before: loadBefore, after: loadAfter }, eventfdWait: eventfdWait().mode, rows,
      pauseMs: { cycles, median: pct(pause, 50), p99: pct(pause, 99), max: pause.at(-1)! },
    }));
  }
}

if (isMain(import.meta.url)) await main();

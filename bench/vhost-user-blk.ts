// vhost-user blk benchmark against a real qemu-storage-daemon (16 MiB raw image in a temp dir):
//   - 4 KiB random reads per second at queue depth 1 and 32, with call-eventfd interrupts and
//     with polling, each also as a ratio against the QD1 (interrupts) figure of this same run;
//   - the pause of stop (GET_VRING_BASE) → snapshot → reinit on a SECOND daemon (a fresh
//     connection, SET_VRING_BASE), with 8 reads kept in flight: median and p99 over the cycles.
//
//   node dist/bench/vhost-user-blk.js [seconds per rate figure, default 2] [cycles, default 20]

import { BlkDriver } from '../drivers/blk/index.js';
import { openTransport, type OpenedDevice } from '../lib/open.js';
import { validateSnapshot } from '../lib/virtio/snapshot/index.js';
import { Daemon, haveDaemon, makeImage, type Image } from '../test/vhost-user/daemon.js';

const SECTORS_4K = 8;

async function rate(img: Image, d: Daemon, depth: number, interrupts: 'auto' | 'poll', seconds: number): Promise<number> {
  const dev = await openTransport(d.address);
  const blk = await BlkDriver.open(dev.transport, { depth, interrupts, maxTransfer: 4096 });
  const extents = img.bytes / 4096;
  let seed = 12345;
  const next = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % extents) * SECTORS_4K;
  for (let i = 0; i < 500; i++) await blk.read(next(), SECTORS_4K); // warm up
  let done = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      await blk.read(next(), SECTORS_4K);
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: depth }, worker));
  const perSecond = done / ((performance.now() - t0) / 1000);
  await blk.close();
  return perSecond;
}

async function pauses(a: Daemon, b: Daemon, cycles: number): Promise<number[]> {
  const src = await openTransport(a.address);
  const dst = await openTransport(b.address, { shareWith: src });
  const blk = await BlkDriver.open(src.transport, { depth: 8 });
  let running = true;
  const traffic = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; running; i++) await blk.read(((w * 997 + i * 31) % 4096) * SECTORS_4K, SECTORS_4K);
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

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  if (!haveDaemon()) {
    console.log('vhost-user-blk bench: skipped — qemu-storage-daemon not found (apt-get install qemu-system-common)');
    return;
  }
  const seconds = Number(process.argv[2] ?? 2);
  const cycles = Number(process.argv[3] ?? 20);
  const img = makeImage(16);
  const a = await Daemon.start(img, 'a');
  const b = await Daemon.start(img, 'b');
  try {
    const rows: { name: string; perSecond: number }[] = [];
    for (const [depth, mode] of [[1, 'auto'], [32, 'auto'], [1, 'poll'], [32, 'poll']] as const) {
      rows.push({ name: `QD${depth} ${mode === 'auto' ? 'interrupts' : 'polling  '}`, perSecond: await rate(img, a, depth, mode, seconds) });
    }
    const base = rows[0]!.perSecond;
    console.log(`vhost-user-blk, 4 KiB random reads, qemu-storage-daemon, ${seconds} s each (ratio vs QD1 interrupts of this run)`);
    for (const r of rows) console.log(`  ${r.name}  ${Math.round(r.perSecond).toString().padStart(7)} req/s  ×${(r.perSecond / base).toFixed(2)}`);
    const p = (await pauses(a, b, cycles)).sort((x, y) => x - y);
    console.log(`stop → snapshot → reinit on the other daemon, ${cycles} cycles, 8 reads in flight: median ${pct(p, 50).toFixed(2)} ms, p99 ${pct(p, 99).toFixed(2)} ms, max ${p.at(-1)!.toFixed(2)} ms`);
  } finally {
    await a.kill();
    await b.kill();
    img.remove();
  }
}

await main();

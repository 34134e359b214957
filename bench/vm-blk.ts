// virtio-blk over VFIO benchmark, run inside the test VM: 4 KiB random reads through BlkDriver on
// QEMU's virtio-blk (split ring 0000:01:00.0, packed ring 0000:02:00.0), at queue depth 1 (one
// read, wait, repeat) and 32 (32 readers), with MSI-X completions and with polling. Each figure is
// printed with its ratio against the baseline measured first in the same boot — QD1, MSI-X, split —
// because absolute numbers under TCG on a shared machine vary by ±30 %; the baseline is measured
// again at the end, and the drift between the two says how far the ratios can be trusted.
//
//   npm run bench:vm                                  build, boot the VM, run with the defaults
//   npm run vm -- node dist/bench/vm-blk.js [SECONDS] [--json]   (default 2 s per configuration)

import { BlkDriver } from '../drivers/blk/index.js';
import { openTransport } from '../lib/open.js';
import type { Layout } from '../lib/virtio/queue/types.js';

const DEVICES: Record<Layout, string> = { split: 'vfio:0000:01:00.0', packed: 'vfio:0000:02:00.0' };
const BLOCK = 4096;
const SECTORS = BLOCK / 512;

interface Result {
  layout: Layout;
  depth: number;
  interrupts: 'msix' | 'poll';
  perSecond: number;
  /** Mean microseconds from submission to completion, as each reader saw it. */
  latencyUs: number;
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

async function measure(layout: Layout, depth: number, interrupts: 'msix' | 'poll', seconds: number): Promise<Result> {
  const dev = await openTransport(DEVICES[layout]);
  const blk = await BlkDriver.open(dev.transport, { layout, interrupts, depth, maxTransfer: BLOCK, queueSize: 256 });
  try {
    if (blk.device.interruptMode !== interrupts) throw new Error(`${DEVICES[layout]} came up in ${blk.device.interruptMode} mode, not ${interrupts}`);
    const next = blocks(depth * 7919 + 1, Math.floor(blk.capacitySectors / SECTORS));
    // Warm up the JIT and QEMU's caches before timing.
    for (let i = 0; i < 300; i += depth) await Promise.all(Array.from({ length: depth }, () => blk.read(next(), SECTORS)));
    let done = 0;
    let busyNs = 0n;
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(seconds * 1e9));
    const reader = async (): Promise<void> => {
      while (process.hrtime.bigint() < end) {
        const t0 = process.hrtime.bigint();
        await blk.read(next(), SECTORS);
        busyNs += process.hrtime.bigint() - t0;
        done++;
      }
    };
    await Promise.all(Array.from({ length: depth }, reader));
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    return { layout, depth, interrupts, perSecond: done / elapsed, latencyUs: Number(busyNs) / done / 1e3 };
  } finally {
    await blk.close();
  }
}

async function main(): Promise<void> {
  const arg = process.argv.slice(2).find((a) => /^\d+(\.\d+)?$/.test(a));
  const seconds = arg ? Number(arg) : 2;
  const results: Result[] = [];
  for (const layout of ['split', 'packed'] as const) {
    for (const interrupts of ['msix', 'poll'] as const) {
      for (const depth of [1, 32]) results.push(await measure(layout, depth, interrupts, seconds));
    }
  }
  const again = await measure('split', 1, 'msix', seconds);
  const baseline = results[0]!.perSecond;
  const drift = again.perSecond / baseline - 1;
  console.log(`virtio-blk over VFIO, 4 KiB random reads, ${seconds} s per configuration; ` +
    `baseline = QD1, MSI-X, split (${Math.round(baseline)} req/s; measured again at the end: ${Math.round(again.perSecond)} req/s, ` +
    `${drift >= 0 ? '+' : ''}${(drift * 100).toFixed(0)} %)`);
  console.log('layout  QD  delivery   req/s    mean µs   ratio');
  for (const r of results) {
    console.log(`${r.layout.padEnd(7)} ${String(r.depth).padStart(2)}  ${r.interrupts.padEnd(8)}  ${String(Math.round(r.perSecond)).padStart(7)}  ` +
      `${r.latencyUs.toFixed(0).padStart(8)}   ${(r.perSecond / baseline).toFixed(2)}×`);
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify({ seconds, baseline, baselineAgain: again.perSecond, results }));
}

main().catch((e: unknown) => {
  console.error(`vm-blk: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

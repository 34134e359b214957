// virtio-net in the test VM, one boot, the same pair of QEMU NICs (scripts/vm/qemu.mjs joins them on
// one hub: what one sends the other receives), two drivers:
//   uvirtio    NetDriver over VFIO: NIC A sends as fast as it can (a full tx ring: one send per
//              descriptor in flight, each followed by the next as it completes), NIC B counts what it
//              receives; with polling and with MSI-X; both NICs in this one Node process
//   DPDK       Debian's dpdk-testpmd with its virtio PMD over VFIO on the same two functions (put in the
//              image by scripts/vm/peers.mjs): one testpmd in txonly mode on the sending NIC and one in
//              rxonly mode on the receiving NIC, each with its own hugepage prefix and forwarding lcore
// 64 B and 1500 B frames (Ethernet header included, no FCS), in both directions: split ring → packed
// ring (0000:03:00.0 → 0000:04:00.0) and packed → split. QEMU's hub lets a NIC's transmit wait while
// the peer has no receive buffer, so the sender's rate is bounded by the receiver's: tx ≈ rx.
// Absolute numbers under TCG on a shared machine vary by ±30 %; the figures that matter are the
// ratios uvirtio / DPDK from this one boot.
//
//   npm run bench:vm-net                  build, boot the VM with the peers, run with the defaults
//   npm run bench:vm-net -- 3 --json      3 s per configuration, and a JSON line at the end
//   npm run vm -- --peers --qemu-arg -m --qemu-arg 2048 -- node dist/bench/vm-net.js [SECONDS] [--json] [--only uvirtio|dpdk]...

import fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { NetDriver } from '../drivers/net/index.js';
import { openTransport } from '../lib/open.js';
import { testpmdPair, TESTPMD, type PmdRates } from './testpmd.js';

const NICS = { split: '0000:03:00.0', packed: '0000:04:00.0' } as const;
type Ring = keyof typeof NICS;
const DIRECTIONS: [Ring, Ring][] = [['split', 'packed'], ['packed', 'split']];
const SIZES = [64, 1500] as const;
/** A local experimental EtherType (IEEE 802): the receiver counts only these frames. */
const ETHERTYPE = 0x88b5;
/** Sends kept in flight: the transmit ring's size (the driver's default, at most 256). */
const WINDOW = 256;
const WARMUP_MS = 500;
/** Bound on the wait for the sends in flight after a window to complete (a few ms when nothing is stuck). */
const DRAIN_MS = 3_000;

type Driver = 'uvirtio-poll' | 'uvirtio-msix' | 'dpdk';

interface Result {
  driver: Driver;
  from: Ring;
  to: Ring;
  size: number;
  /** Frames per second the sender's device took (transmit completions; testpmd: frames tx_burst accepted). */
  txPps: number;
  /** Frames per second the receiver got. */
  rxPps: number;
  /** DPDK only: the wall-clock cross-check and the number of statistics blocks averaged (bench/testpmd.ts). */
  pmd?: Pick<PmdRates, 'wall' | 'blocks'>;
  /** uvirtio only: sends still not completed DRAIN_MS after the window (the transmit queue stalled). */
  stalledSends?: number;
}

function frame(dst: Uint8Array, src: Uint8Array, size: number): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = ETHERTYPE >> 8;
  f[13] = ETHERTYPE & 0xff;
  for (let i = 14; i < size; i++) f[i] = i & 0xff;
  return f;
}

async function openNic(ring: Ring, interrupts: 'poll' | 'msix'): Promise<NetDriver> {
  const dev = await openTransport(`vfio:${NICS[ring]}`);
  const net = await NetDriver.open(dev.transport, { layout: ring, interrupts, rxBuffers: 256 });
  if (net.device.interruptMode !== interrupts) {
    await net.close();
    throw new Error(`${NICS[ring]} came up in ${net.device.interruptMode} mode, not ${interrupts}`);
  }
  return net;
}

/**
 * One window on freshly opened NICs: `from` sends `size`-byte frames to `to` with WINDOW in flight;
 * both counted over `seconds` after WARMUP_MS. Sends still in flight DRAIN_MS after the window are
 * reported as stalled (close() resets both devices, which rejects them).
 */
async function stream(from: Ring, to: Ring, size: number, interrupts: 'poll' | 'msix', seconds: number): Promise<Omit<Result, 'driver'>> {
  const tx = await openNic(from, interrupts);
  let rx: NetDriver | undefined;
  let stop = false;
  let pumps: Promise<unknown> = Promise.resolve();
  try {
    rx = await openNic(to, interrupts);
    const f = frame(rx.mac, tx.mac, size);
    let received = 0;
    rx.onFrame((r) => {
      const b = r.frame;
      if (b.length === size && b[12] === ETHERTYPE >> 8 && b[13] === (ETHERTYPE & 0xff)) received++;
    });
    let sent = 0;
    let inFlight = 0;
    const pump = async (): Promise<void> => {
      while (!stop) {
        inFlight++;
        try {
          await tx.send(f);
        } catch (e) {
          if (stop) return; // rejected by close() after a stall
          throw e;
        } finally {
          inFlight--;
        }
        sent++;
      }
    };
    pumps = Promise.all(Array.from({ length: WINDOW }, pump));
    const failed = pumps.then(() => { throw new Error('the senders ended before the window did'); });
    const wait = (ms: number): Promise<unknown> => Promise.race([delay(ms), failed]);
    await wait(WARMUP_MS);
    const [tx0, rx0, t0] = [sent, received, process.hrtime.bigint()];
    await wait(seconds * 1000);
    const [tx1, rx1, t1] = [sent, received, process.hrtime.bigint()];
    stop = true;
    const drained = await Promise.race([pumps.then(() => true), delay(DRAIN_MS, false)]);
    const s = Number(t1 - t0) / 1e9;
    return { from, to, size, txPps: (tx1 - tx0) / s, rxPps: (rx1 - rx0) / s, ...(drained ? {} : { stalledSends: inFlight }) };
  } finally {
    stop = true;
    await tx.close();
    await rx?.close();
    await Promise.race([pumps.catch(() => undefined), delay(DRAIN_MS)]);
  }
}

async function uvirtio(interrupts: 'poll' | 'msix', seconds: number, say: (r: Result) => void): Promise<void> {
  const driver = interrupts === 'poll' ? 'uvirtio-poll' : 'uvirtio-msix';
  await stream('split', 'packed', 64, interrupts, Math.min(seconds, 1)); // JIT and QEMU warm-up, not counted
  for (const size of SIZES) {
    for (const [from, to] of DIRECTIONS) say({ driver, ...await stream(from, to, size, interrupts, seconds) });
  }
}

function find(results: Result[], driver: Driver, from: Ring, size: number): Result | undefined {
  return results.find((r) => r.driver === driver && r.from === from && r.size === size);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = argv.find((a) => /^\d+(\.\d+)?$/.test(a));
  const seconds = arg ? Number(arg) : 3;
  const only = argv.flatMap((a, i) => (argv[i - 1] === '--only' ? [a] : []));
  const want = (d: string): boolean => !only.length || only.includes(d);
  const skipped: string[] = [];
  const results: Result[] = [];
  const say = (r: Result): void => {
    results.push(r);
    process.stderr.write(`  ${r.driver} ${r.from}→${r.to} ${r.size} B: tx ${Math.round(r.txPps)} rx ${Math.round(r.rxPps)} frames/s` +
      `${r.stalledSends ? ` (${r.stalledSends} sends stalled)` : ''}\n`);
  };

  if (want('uvirtio')) {
    await uvirtio('poll', seconds, say);
    await uvirtio('msix', seconds, say);
  }
  if (want('dpdk')) {
    if (!fs.existsSync(TESTPMD)) skipped.push(`DPDK: ${TESTPMD} is not in the image (boot with --peers)`);
    else {
      try {
        for (const size of SIZES) {
          for (const [from, to] of DIRECTIONS) {
            const r = await testpmdPair(NICS[from], NICS[to], size, seconds);
            say({ driver: 'dpdk', from, to, size, txPps: r.txPps, rxPps: r.rxPps, pmd: { wall: r.wall, blocks: r.blocks } });
          }
        }
      } catch (e) {
        skipped.push(`DPDK: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  const ratios: { name: string; from: Ring; to: Ring; size: number; tx: number; rx: number }[] = [];
  for (const driver of ['uvirtio-poll', 'uvirtio-msix'] as const) {
    for (const size of SIZES) {
      for (const [from, to] of DIRECTIONS) {
        const u = find(results, driver, from, size);
        const d = find(results, 'dpdk', from, size);
        if (u && d && d.txPps > 0 && d.rxPps > 0) ratios.push({ name: `${driver} / DPDK`, from, to, size, tx: u.txPps / d.txPps, rx: u.rxPps / d.rxPps });
      }
    }
  }

  console.log(`virtio-net in the test VM, ${seconds} s per configuration, one boot, NIC A split (${NICS.split}) and NIC B packed (${NICS.packed}) on one QEMU hub`);
  console.log('driver         from → to          size   tx frames/s   rx frames/s');
  for (const r of results) {
    console.log(`${r.driver.padEnd(13)}  ${`${r.from} → ${r.to}`.padEnd(16)}  ${String(r.size).padStart(4)}  ${String(Math.round(r.txPps)).padStart(12)}  ${String(Math.round(r.rxPps)).padStart(12)}` +
      `${r.stalledSends ? `   transmit stalled: ${r.stalledSends} sends never completed` : ''}`);
  }
  if (ratios.length) {
    console.log('ratio                  from → to          size   tx ratio   rx ratio');
    for (const q of ratios) {
      console.log(`${q.name.padEnd(21)}  ${`${q.from} → ${q.to}`.padEnd(16)}  ${String(q.size).padStart(4)}  ${q.tx.toFixed(2).padStart(8)}×  ${q.rx.toFixed(2).padStart(8)}×`);
    }
  }
  for (const s of skipped) console.log(`skipped: ${s}`);
  if (argv.includes('--json')) console.log(JSON.stringify({ seconds, results, ratios, skipped }));
}

main().catch((e: unknown) => {
  console.error(`vm-net: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

// virtio-net in the test VM, one boot, the same pair of QEMU NICs (scripts/vm/qemu.mjs joins them on
// one hub: what one sends the other receives), two drivers:
//   uvirtio    NetDriver over VFIO: NIC A sends as fast as it can (a full tx ring: one send per
//              descriptor in flight, each followed by the next as it completes), NIC B counts what it
//              receives; with polling and with MSI-X; both NICs in this one Node process, or with
//              --processes 2 the sender in a second one (bench/net-sender.ts), each NIC with an event
//              loop and a vCPU of its own as DPDK's pair of processes has (bench/README.md: what each gives)
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
//   npm run vm -- --peers --qemu-arg -m --qemu-arg 2048 -- node dist/bench/vm-net.js [SECONDS] [--json] [--only uvirtio|dpdk]... [--no-event-idx] [--processes 1|2]

import fs from 'node:fs';
import { Option } from 'commander';
import { DIRECTIONS, NICS, SIZES, stream, type Ring, type StreamResult } from './net-stream.js';
import { testpmdPair, TESTPMD, type PmdRates } from './testpmd.js';
import { benchProgram, cliArgs, intIn, isMain, jsonOption, noEventIdxOption, parseWith, repeatableChoice, secondsArgument, valueOf } from './cli.js';

type Driver = 'uvirtio-poll' | 'uvirtio-msix' | 'dpdk';

/** txPps for testpmd: frames its tx_burst accepted per second (the ring frees as fast as the device sends). */
interface Result extends StreamResult {
  driver: Driver;
  /** DPDK only: the wall-clock cross-check and the number of statistics blocks averaged (bench/testpmd.ts). */
  pmd?: Pick<PmdRates, 'wall' | 'blocks'>;
}

/** --no-event-idx: uvirtio without VIRTIO_F_EVENT_IDX (bench/net-stream.ts); main() sets it from the command line. */
let eventIdx = true;
/** --processes: 1 (default) drives both NICs from this process, 2 puts the sender in a second one (as DPDK's pair); main() sets it. */
let processes: 1 | 2 = 1;

async function uvirtio(interrupts: 'poll' | 'msix', seconds: number, say: (r: Result) => void): Promise<void> {
  const driver = interrupts === 'poll' ? 'uvirtio-poll' : 'uvirtio-msix';
  await stream('split', 'packed', 64, Math.min(seconds, 1), { interrupts, eventIdx, processes }); // JIT and QEMU warm-up, not counted
  for (const size of SIZES) {
    for (const [from, to] of DIRECTIONS) say({ driver, ...await stream(from, to, size, seconds, { interrupts, eventIdx, processes }) });
  }
}

function find(results: Result[], driver: Driver, from: Ring, size: number): Result | undefined {
  return results.find((r) => r.driver === driver && r.from === from && r.size === size);
}

/** The command line: [SECONDS] [--json] [--only uvirtio|dpdk]... [--no-event-idx] [--processes 1|2]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { seconds: number; json: boolean; only: string[]; eventIdx: boolean; processes: 1 | 2 } {
  const program = benchProgram('vm-net', 'virtio-net in the test VM, one boot: one NIC sends 64 B / 1500 B frames, the other counts them, both directions; uvirtio (polling, MSI-X) against DPDK testpmd.',
    'Run: npm run bench:vm-net -- [SECONDS] [options]   (builds, boots the VM with the peers; the script runs in the VM)')
    .addArgument(secondsArgument(3))
    .addOption(jsonOption())
    .addOption(repeatableChoice('--only <driver>', ['uvirtio', 'dpdk'] as const, 'measure only these drivers'))
    .addOption(noEventIdxOption())
    .addOption(new Option('--processes <n>', 'uvirtio\'s processes: 1 drives both NICs from one, 2 puts the sender in a second process as DPDK\'s two testpmd processes')
      .argParser(valueOf('--processes', intIn(1, 2))).default(1));
  const { opts, args } = parseWith(program, argv);
  return { seconds: args[0] as number, json: opts.json === true, only: opts.only as string[], eventIdx: opts.eventIdx !== false, processes: opts.processes === 2 ? 2 : 1 };
}

async function main(): Promise<void> {
  const args = cliArgs(parseArgs);
  const { seconds, only } = args;
  eventIdx = args.eventIdx;
  processes = args.processes;
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
            say({ driver: 'dpdk', from, to, size, txPps: r.txPps, rxPps: r.rxPps, processes: 2, pmd: { wall: r.wall, blocks: r.blocks } });
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

  console.log(`virtio-net in the test VM, ${seconds} s per configuration, one boot, NIC A split (${NICS.split}) and NIC B packed (${NICS.packed}) on one QEMU hub` +
    `${eventIdx ? '' : '; uvirtio without EVENT_IDX'}; uvirtio ${processes === 2 ? 'sender and receiver in two processes, as DPDK\'s pair' : 'drives both NICs from one process'}`);
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
  if (args.json) console.log(JSON.stringify({ seconds, eventIdx, processes, results, ratios, skipped }));
}

if (isMain(import.meta.url)) main().catch((e: unknown) => {
  console.error(`vm-net: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

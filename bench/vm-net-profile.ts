// Where the time goes in the guest for one uvirtio case of bench/vm-net.ts: runs one window (one NIC
// sends, the other counts; bench/net-stream.ts) under the V8 CPU profiler (node:inspector, in
// process; from the first send to the end of the timed window, warm-up included) and prints the self
// time per area (native / koffi, lib/, drivers/, node's internals, GC, idle) and the top functions.
// Run it in the test VM:
//
//   npm run vm -- node dist/bench/vm-net-profile.js [split|packed] [64|1500] [poll|msix] [SECONDS] [--no-event-idx]
//
// The first argument is the sending NIC (the other receives); defaults: split 64 poll 3.

import { Session } from 'node:inspector/promises';
import { Argument } from 'commander';
import { benchProgram, cliArgs, intIn, isMain, noEventIdxOption, parseWith, secondsArgument, valueOf } from './cli.js';
import { stream, type Ring } from './net-stream.js';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

function area(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)') return fn;
  if (url.includes('/koffi/')) return 'koffi (JS side)';
  if (url.includes('/dist/lib/')) return `lib/${url.split('/dist/lib/')[1]?.split('/')[0] ?? ''}`;
  if (url.includes('/dist/drivers/')) return 'drivers/';
  if (url.includes('/dist/bench/')) return 'bench (the workload)';
  if (url.startsWith('node:')) return 'node internals';
  return url ? 'other' : 'native (no script: koffi calls, syscalls, builtins)';
}

/** The command line: [split|packed] [SIZE] [poll|msix] [SECONDS] [--no-event-idx]. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { from: Ring; size: number; mode: 'poll' | 'msix'; seconds: number; eventIdx: boolean } {
  const program = benchProgram('vm-net-profile', "One uvirtio window of bench/vm-net.ts (the named NIC sends, the other receives) under the V8 CPU profiler: self time per area and the top functions.",
    'Run in the test VM: npm run vm -- node dist/bench/vm-net-profile.js [split|packed] [64|1500] [poll|msix] [SECONDS] [--no-event-idx]')
    .addArgument(new Argument('[from]', 'the sending NIC, by its ring layout (the other receives)').choices(['split', 'packed']).default('split'))
    .addArgument(new Argument('[size]', 'frame size, bytes, Ethernet header included (bench:vm-net measures 64 and 1500)')
      .argParser(valueOf('size', intIn(14, 1514, 'bytes'))).default(64))
    .addArgument(new Argument('[mode]', 'used-buffer notifications: polling or MSI-X').choices(['poll', 'msix']).default('poll'))
    .addArgument(secondsArgument(3, 'seconds of the timed window'))
    .addOption(noEventIdxOption());
  const { opts, args } = parseWith(program, argv);
  return { from: args[0] as Ring, size: args[1] as number, mode: args[2] as 'poll' | 'msix', seconds: args[3] as number, eventIdx: opts.eventIdx !== false };
}

async function main(): Promise<void> {
  const { from, size, mode, seconds, eventIdx } = cliArgs(parseArgs);
  const to: Ring = from === 'split' ? 'packed' : 'split';
  const session = new Session();
  session.connect();
  let profile: Profile | undefined;
  const window = {
    async started(): Promise<void> {
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 100 });
      await session.post('Profiler.start');
    },
    async ended(): Promise<void> {
      profile = ((await session.post('Profiler.stop')) as unknown as { profile: Profile }).profile;
    },
  };
  let r: Awaited<ReturnType<typeof stream>>;
  try {
    r = await stream(from, to, size, seconds, { interrupts: mode, eventIdx, window });
  } finally {
    session.disconnect();
  }
  if (!profile) throw new Error('the profiler returned no profile');
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  const { samples, timeDeltas } = profile;
  samples.forEach((id, i) => {
    const us = timeDeltas[i] ?? 0;
    const n = byId.get(id);
    total += us;
    if (!n) return;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/dist\//, '').replace(/^file:\/\//, '')}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
  });
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  console.log(`uvirtio ${from} → ${to} ${size} B ${mode}${eventIdx ? '' : ' (no EVENT_IDX)'}: tx ${Math.round(r.txPps)} rx ${Math.round(r.rxPps)} frames/s` +
    `${r.stalledSends ? `, ${r.stalledSends} sends stalled` : ''}; ${(total / 1e6).toFixed(1)} s sampled`);
  console.log('self time by area:');
  for (const [a, us] of [...areas].sort((p, q) => q[1] - p[1])) console.log(`  ${pct(us)}  ${a}`);
  console.log('top functions by self time:');
  for (const [f, us] of [...fns].sort((p, q) => q[1] - p[1]).slice(0, 20)) console.log(`  ${pct(us)}  ${f}`);
}

if (isMain(import.meta.url)) main().catch((e: unknown) => {
  console.error(`vm-net-profile: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

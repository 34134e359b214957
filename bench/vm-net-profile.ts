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

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const [fromArg = 'split', sizeArg = '64', mode = 'poll', secondsArg = '3'] = args;
  if (fromArg !== 'split' && fromArg !== 'packed') throw new Error('the sender must be split or packed');
  if (mode !== 'poll' && mode !== 'msix') throw new Error('the mode must be poll or msix');
  const from: Ring = fromArg;
  const to: Ring = from === 'split' ? 'packed' : 'split';
  const eventIdx = !process.argv.includes('--no-event-idx');
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
    r = await stream(from, to, Number(sizeArg), Number(secondsArg), { interrupts: mode, eventIdx, window });
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
  console.log(`uvirtio ${from} → ${to} ${sizeArg} B ${mode}${eventIdx ? '' : ' (no EVENT_IDX)'}: tx ${Math.round(r.txPps)} rx ${Math.round(r.rxPps)} frames/s` +
    `${r.stalledSends ? `, ${r.stalledSends} sends stalled` : ''}; ${(total / 1e6).toFixed(1)} s sampled`);
  console.log('self time by area:');
  for (const [a, us] of [...areas].sort((p, q) => q[1] - p[1])) console.log(`  ${pct(us)}  ${a}`);
  console.log('top functions by self time:');
  for (const [f, us] of [...fns].sort((p, q) => q[1] - p[1]).slice(0, 20)) console.log(`  ${pct(us)}  ${f}`);
}

main().catch((e: unknown) => {
  console.error(`vm-net-profile: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

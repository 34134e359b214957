// `uvirtio rehearse`: the whole migration rehearsal in one command (cli/rehearsal/engine.ts).

import { Option, type Command } from 'commander';
import { rehearse } from '../rehearsal/engine.js';
import type { WorkloadKind } from '../rehearsal/workload.js';
import { EXIT, action, exitCodeForCode } from '../exit.js';
import { LAYOUT_CHOICES, MECHANISM_CHOICES, intArg, timeoutOf, type LayoutChoice, type MechanismChoice } from '../options.js';
import { interruption } from '../signals.js';

interface RehearseOptions {
  device: string; to?: string; workload?: WorkloadKind; cycles: number; inflight: number;
  mechanism: MechanismChoice; layout: LayoutChoice; seed: number; json?: boolean; snapshotDir?: string;
}

async function run(o: RehearseOptions, timeoutMs: number): Promise<number> {
  const r = await rehearse({
    device: o.device, ...(o.to ? { to: o.to } : {}), ...(o.workload ? { workload: o.workload } : {}),
    cycles: o.cycles, inflight: o.inflight, mechanism: o.mechanism, layout: o.layout, seed: o.seed,
    ...(o.snapshotDir ? { snapshotDir: o.snapshotDir } : {}),
    timeoutMs, signal: interruption(),
    onStart: o.json ? undefined : (s) => console.log(
      `rehearsing ${s.workload} traffic on ${s.device}${s.target !== s.device ? ` ⇄ ${s.target}` : ''} (${s.layout} rings), ${o.cycles} cycles, seed ${o.seed}`),
    onCycle: o.json ? undefined : (c) => console.log(
      `cycle ${c.cycle}: stopped ${c.from} with ${c.inFlightAtStop} in flight (${c.inRingAtStop} in the rings, ${c.mechanism}), snapshot ${c.snapshotFile}, reinit on ${c.to}, pause ${c.pauseMs.toFixed(2)} ms`),
  });
  if (o.json) console.log(JSON.stringify(r));
  else {
    const q = r.requests;
    console.log(`${r.ok ? 'OK' : 'FAILED'}: ${r.workload} on ${r.device}${r.target !== r.device ? ` ⇄ ${r.target}` : ''}, ${r.mechanism ?? 'no'} mechanism, ${r.layout} rings, ${r.cycles} cycles`);
    console.log(`  requests: ${q.submitted} submitted, ${q.completed} completed, ${q.lost} lost, ${q.duplicated} duplicated, ${q.corrupted} corrupted`);
    console.log(`  pause: median ${r.pause_ms.median} ms, p99 ${r.pause_ms.p99} ms, max ${r.pause_ms.max} ms`);
    if (r.refused) {
      const e = r.refused.error;
      console.log(`  cycle ${r.refused.cycle}: ${r.refused.target} refused the reinit — ${e.code}: ${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}; the source took the rings back`);
    }
  }
  // A refused migration exits as its error would (2 for a snapshot that does not fit the target,
  // 3 for a device that refused); the verdict above still covers every request.
  return r.refused ? exitCodeForCode(r.refused.error.code) : r.ok ? EXIT.OK : EXIT.VERDICT;
}

export function registerRehearse(program: Command): void {
  program.command('rehearse')
    .description('run traffic, stop at seeded random points with requests in flight, snapshot to a file, reinit (same device or --to), verify every request completed exactly once')
    .option('--device <dev>', 'the device to rehearse on', 'sim:blk')
    .option('--to <dev>', 'a second device of the same type: each cycle migrates to the other one')
    .addOption(new Option('--workload <kind>', 'traffic (default: from the device type)').choices(['blk', 'net']))
    .option('--cycles <n>', 'stop/reinit cycles', intArg('cycles', 1, 100_000), 5)
    .option('--inflight <n>', 'requests kept in flight', intArg('inflight', 1, 4096), 16)
    .addOption(new Option('--mechanism <m>', 'how to stop and read state').choices(MECHANISM_CHOICES).default('auto'))
    .addOption(new Option('--layout <l>', 'virtqueue layout').choices(LAYOUT_CHOICES).default('auto'))
    .option('--seed <s>', 'seed for traffic and stop points', intArg('seed', 0, 0xffffffff), 1)
    .option('--snapshot-dir <dir>', 'keep the snapshot files here (an existing directory)')
    .option('--json', 'one JSON object on stdout')
    .action(action((o: RehearseOptions, cmd: Command) => run(o, timeoutOf(cmd))));
}

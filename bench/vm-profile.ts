// Where the time goes in the guest: runs one uvirtio virtio-blk configuration of bench/vm-blk.ts
// (4 KiB random reads over VFIO) under the V8 CPU profiler (node:inspector, in process) and prints the
// functions with the most self time, and the share per area (koffi/native, lib/, drivers/, node's
// internals, GC, idle). Run it in the test VM:
//
//   npm run vm -- node dist/bench/vm-profile.js split|packed DEPTH poll|msix|hybrid [SECONDS] [noevent] [noindirect] [noprofile] [into] [count] [spin=µs] [warmup=ms] [threads] [bdf=…] [queues=N] [budget=half|N]
//
// hybrid: MSI-X with poll-then-sleep (OpenOptions.hybridPollUs 4000, as bench/vm-blk.ts);
//
// noevent: refuse VIRTIO_F_EVENT_IDX; noindirect: no indirect descriptor tables (chains in the ring); noprofile: only the rate, without the profiler's overhead;
// bdf=…: the device to bind (default: 0000:01:00.0 for split, 0000:02:00.0 for packed; the packed
// device also runs split when asked, which tells the layout's cost from the device's);
// queues=N: request queues to use (BlkOptions.queues; the packed device has two, the C peer uses one);
// budget=half|N: OpenOptions.pollBudget (0: take all per turn);
// spin=N: OpenOptions.pollSpinUs (default: the SDK's); threads: each thread's CPU ticks (utime, stime
// from /proc/self/task) before and after the timed window (which threads besides the main one work);
// count: also count the MMIO accesses to mapped BARs per request (16-bit writes there are the
// notifications; reads are status checks), by wrapping MmapWindow's methods, and the interrupts: the
// eventfd wake-ups that reached the handler and the signals they carried (one wake-up may carry
// several), by wrapping EventfdWatch's delivery; and the process's minor page faults and voluntary
// context switches (process.resourceUsage()).

import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Argument } from 'commander';
import { BlkDriver } from '../drivers/blk/index.js';
import { openTransport } from '../lib/open.js';
import { MmapWindow } from '../lib/vfio/region.js';
import { EventfdWatch } from '../lib/sys/eventfd-watch.js';
import type { Layout } from '../lib/virtio/queue/types.js';
import { MAX_POLL_SPIN_US } from '../lib/virtio/device.js';
import { POLL_BUDGET, type PollBudget } from '../lib/virtio/busy-poll.js';
import { normaliseBdf } from '../lib/pci/bdf.js';
import type { OptionSpec } from '../lib/util/options.js';
import { benchProgram, cliArgs, intIn, isMain, parseWith, SECONDS, usageError } from './cli.js';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

function area(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)') return fn;
  if (url.includes('/koffi/')) return 'koffi (JS side)';
  if (url.includes('/dist/lib/')) return `lib/${url.split('/dist/lib/')[1]?.split('/')[0] ?? ''}`;
  if (url.includes('/dist/drivers/')) return 'drivers/';
  if (url.includes('/dist/bench/')) return 'bench (the workload)';
  if (url.startsWith('node:')) return 'node internals';
  if (!url) return 'native (no script: koffi calls, syscalls, builtins)';
  return 'other';
}

/** Prints each thread's utime and stime (clock ticks) from /proc/self/task. */
function threadTimes(when: string): void {
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const st = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    console.log(`${when} thread ${tid} utime ${f[11]} stime ${f[12]}`);
  }
}

/** The bare words: each turns something on or off. */
const WORDS = {
  count: 'also count per request: MMIO accesses to mapped BARs, interrupt wake-ups and their signals, minor page faults, voluntary context switches',
  noevent: 'refuse VIRTIO_F_EVENT_IDX',
  noindirect: 'no indirect descriptor tables (chains in the ring)',
  noprofile: "only the rate, without the profiler's overhead",
  into: 'read with BlkDriver.readInto() into a buffer per reader (no allocation per read) instead of read()',
  threads: "each thread's CPU ticks (utime, stime) before and after the timed window",
} as const;

/** A PCI address (lib/pci/bdf.ts), normalised: 01:00.0 is 0000:01:00.0. */
const BDF: OptionSpec<string> = {
  expects: 'a PCI address like 0000:01:00.0',
  parse: (t) => normaliseBdf(t),
  fits: (v): v is string => typeof v === 'string' && normaliseBdf(v) === v,
};

/** The key=value words: what the value must be, and what it sets. */
const KEYS = {
  bdf: { spec: BDF, help: 'the device to bind (default: 0000:01:00.0 for split, 0000:02:00.0 for packed)' },
  queues: { spec: intIn(1, 65_535), help: 'request queues to use (BlkOpenOptions.queues; default: all the device has, at most 16)' },
  budget: { spec: POLL_BUDGET, help: "OpenOptions.pollBudget: used elements per polling turn, 'half' of those in flight, 0 for all (default: the SDK's)" },
  spin: { spec: intIn(0, MAX_POLL_SPIN_US, 'µs'), help: "OpenOptions.pollSpinUs, µs (default: the SDK's)" },
  warmup: { spec: intIn(0, 600_000, 'ms'), help: 'reads before the timed window, ms (default 3000)' },
} as const satisfies Record<string, { spec: OptionSpec<unknown>; help: string }>;

/** What the words say. */
export interface ProfileArgs {
  layout: Layout;
  depth: number;
  mode: 'poll' | 'msix' | 'hybrid';
  seconds: number;
  eventIdx: boolean;
  indirect: boolean;
  profile: boolean;
  count: boolean;
  /** Read with readInto() into a buffer per reader instead of read(). */
  into: boolean;
  threads: boolean;
  bdf: string;
  queues: number | undefined;
  budget: PollBudget | undefined;
  spinUs: number | undefined;
  warmupMs: number;
}

const known = (): string => `words: ${Object.keys(WORDS).join(', ')}; key=value: ${Object.keys(KEYS).join(', ')}`;

/**
 * The command line, as words: split|packed DEPTH poll|msix|hybrid [SECONDS] (in this order,
 * defaults packed 1 poll 3), then any of WORDS and KEYS=value. Throws CommanderError (exit 2) for
 * an unknown word or a value that does not fit.
 */
export function parseArgs(argv: readonly string[]): ProfileArgs {
  const program = benchProgram('vm-profile', "One uvirtio virtio-blk configuration of bench/vm-blk.ts (4 KiB random reads over VFIO) under the V8 CPU profiler: self time per area and the top functions.",
    'Run in the test VM: npm run vm -- node dist/bench/vm-profile.js split|packed DEPTH poll|msix|hybrid [SECONDS] [word]... [key=value]...\n\n' +
    `Words:\n${Object.entries(WORDS).map(([w, h]) => `  ${w.padEnd(12)}${h}`).join('\n')}\n` +
    `key=value:\n${Object.entries(KEYS).map(([k, { spec, help }]) => `  ${`${k}=`.padEnd(12)}${help}: ${spec.expects}`).join('\n')}`)
    .addArgument(new Argument('[words...]', 'split|packed (default packed), DEPTH: reads in flight, an integer from 1 to 4096 (default 1), ' +
      'poll|msix|hybrid (default poll; hybrid: MSI-X with a 4000 µs poll-then-sleep window, as bench/vm-blk.ts), SECONDS of the timed window, ' +
      `${SECONDS.expects} (default 3); then the words and key=value below, in any order`));
  const { args } = parseWith(program, argv);
  const words = (args[0] ?? []) as string[];
  const on = new Set<string>();
  const values: Record<string, unknown> = {};
  const positional: string[] = [];
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq > 0) {
      const key = w.slice(0, eq);
      if (!Object.hasOwn(KEYS, key)) throw usageError(`unknown word "${w}" (${known()})`);
      const { spec } = KEYS[key as keyof typeof KEYS];
      const v = spec.parse(w.slice(eq + 1));
      if (v === undefined) throw usageError(`${w}: ${key}= must be ${spec.expects}`);
      values[key] = v;
    } else if (Object.hasOwn(WORDS, w)) on.add(w);
    else positional.push(w);
  }
  const [layout = 'packed', depthWord = '1', mode = 'poll', secondsWord = '3', extra] = positional;
  const wrong = (what: string, w: string, expects: string): never => {
    throw usageError(/^[0-9.]+$/.test(w) || ['split', 'packed', 'poll', 'msix', 'hybrid'].includes(w)
      ? `${what} must be ${expects}, got "${w}"` : `unknown word "${w}" (${what} must be ${expects}; ${known()})`);
  };
  if (extra !== undefined) throw usageError(`unknown word "${extra}" (after SECONDS come only ${known()})`);
  if (layout !== 'split' && layout !== 'packed') return wrong('the layout (1st word)', layout, 'split or packed');
  const depthSpec = intIn(1, 4096);
  const depth = depthSpec.parse(depthWord) ?? wrong('DEPTH (2nd word)', depthWord, depthSpec.expects);
  if (mode !== 'poll' && mode !== 'msix' && mode !== 'hybrid') return wrong('the mode (3rd word)', mode, 'poll, msix or hybrid');
  const seconds = SECONDS.parse(secondsWord) ?? wrong('SECONDS (4th word)', secondsWord, SECONDS.expects);
  return {
    layout, depth, mode, seconds,
    eventIdx: !on.has('noevent'), indirect: !on.has('noindirect'), profile: !on.has('noprofile'), count: on.has('count'), threads: on.has('threads'), into: on.has('into'),
    bdf: (values.bdf as string | undefined) ?? (layout === 'split' ? '0000:01:00.0' : '0000:02:00.0'),
    queues: values.queues as number | undefined, budget: values.budget as PollBudget | undefined,
    spinUs: values.spin as number | undefined, warmupMs: (values.warmup as number | undefined) ?? 3000,
  };
}

async function main(): Promise<void> {
  const a = cliArgs(parseArgs);
  const { layout, depth, mode, seconds, eventIdx, bdf } = a;
  const spinUs = a.spinUs;
  const profiling = a.profile;
  const mmio = { writes16: 0, writes: 0, reads: 0, wakeups: 0, signals: 0 };
  if (a.count) {
    const proto = MmapWindow.prototype as unknown as Record<string, (this: MmapWindow, ...a: number[]) => number | undefined>;
    for (const name of ['read8', 'read16', 'read32', 'write8', 'write16', 'write32']) {
      const original = proto[name]!;
      proto[name] = function (this: MmapWindow, ...a: number[]) {
        if (name === 'write16') mmio.writes16++;
        else if (name.startsWith('write')) mmio.writes++;
        else mmio.reads++;
        return original.apply(this, a);
      };
    }
    const watch = EventfdWatch.prototype as unknown as { deliver: (this: EventfdWatch, fd: number, count: bigint) => void };
    const deliver = watch.deliver;
    watch.deliver = function (this: EventfdWatch, fd: number, count: bigint) {
      mmio.wakeups++;
      mmio.signals += Number(count);
      deliver.call(this, fd, count);
    };
  }
  const dev = await openTransport(`vfio:${bdf}`);
  const blk = await BlkDriver.open(dev.transport, {
    layout, interrupts: mode === 'poll' ? 'poll' : 'msix', depth, maxTransfer: 4096, queueSize: 256, eventIdx, indirect: a.indirect,
    hybridPollUs: mode === 'hybrid' ? 4000 : 0, pollSpinUs: spinUs, queues: a.queues, pollBudget: a.budget,
  });
  const count = Math.floor(blk.capacitySectors / 8);
  let x = 12345;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return ((x >>> 0) % count) * 8;
  };
  const session = new Session();
  session.connect();
  let done = 0;
  try {
    // Warm-up by time, as bench/vm-blk.ts (TurboFan under TCG takes tens of ms per function).
    let warm = true;
    const warmTimer = setTimeout(() => { warm = false; }, a.warmupMs);
    const own = Array.from({ length: depth }, () => new Uint8Array(4096));
    const readOne = a.into ? (loop: number) => blk.readInto(next(), 8, own[loop]!) : () => blk.read(next(), 8);
    await Promise.all(Array.from({ length: depth }, async (_, loop) => {
      while (warm) await readOne(loop);
    }));
    clearTimeout(warmTimer);
    if (profiling) {
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 100 });
      await session.post('Profiler.start');
    }
    mmio.writes16 = mmio.writes = mmio.reads = mmio.wakeups = mmio.signals = 0;
    const faultsBefore = process.resourceUsage();
    if (a.threads) threadTimes('start');
    // The window ends by a timer, not a clock read per request (in the TCG guest a clock read costs
    // 3–4 µs, HPET or TSC alike); the C peer reads it every 64 completions.
    let running = true;
    const start = performance.now();
    const timer = setTimeout(() => { running = false; }, seconds * 1e3);
    await Promise.all(Array.from({ length: depth }, async (_, loop) => {
      while (running) {
        await readOne(loop);
        done++;
      }
    }));
    clearTimeout(timer);
    const elapsed = (performance.now() - start) / 1e3;
    const faultsAfter = process.resourceUsage();
    if (a.threads) threadTimes('end');
    const per = (n: number): string => (n / Math.max(done, 1)).toFixed(2);
    const setting = `uvirtio ${layout} QD${depth} ${mode}${a.into ? " readInto" : ""}${eventIdx ? '' : ' (no EVENT_IDX)'}${a.indirect ? '' : ' (no indirect)'} spin ${blk.device.pollSpinUs} µs, ${blk.queueCount} queue(s), budget ${blk.device.pollBudget}: ${Math.round(done / elapsed)} req/s` +
      (a.count ? `; per request: ${per(mmio.writes16)} 16-bit MMIO writes (notifications), ${per(mmio.writes)} other writes, ${per(mmio.reads)} MMIO reads, ${per(mmio.wakeups)} interrupt wake-ups carrying ${per(mmio.signals)} signals, ${per(faultsAfter.minorPageFault - faultsBefore.minorPageFault)} minor page faults, ${per(faultsAfter.voluntaryContextSwitches - faultsBefore.voluntaryContextSwitches)} voluntary context switches` : '');
    if (!profiling) {
      console.log(`${setting}; missed interrupts ${blk.missedInterrupts}, watchdog nudges ${blk.nudges}`);
      return;
    }
    const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const dt = profile.timeDeltas[i] ?? 0;
      self.set(id, (self.get(id) ?? 0) + dt);
      total += dt;
    });
    const fns = new Map<string, number>();
    const areas = new Map<string, number>();
    for (const [id, us] of self) {
      const n = byId.get(id);
      if (!n) continue;
      const { functionName, url, lineNumber } = n.callFrame;
      const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/dist\//, '').replace(/^file:\/\//, '')}:${lineNumber + 1}`;
      fns.set(key, (fns.get(key) ?? 0) + us);
      const a = area(url, functionName);
      areas.set(a, (areas.get(a) ?? 0) + us);
    }
    const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
    console.log(`${setting}, ${(total / Math.max(done, 1)).toFixed(0)} µs sampled per request`);
    console.log('self time by area:');
    for (const [a, us] of [...areas].sort((p, q) => q[1] - p[1])) console.log(`  ${pct(us)}  ${a}`);
    console.log('top functions by self time:');
    for (const [f, us] of [...fns].sort((p, q) => q[1] - p[1]).slice(0, 25)) console.log(`  ${pct(us)}  ${f}`);
  } finally {
    session.disconnect();
    await blk.close();
  }
}

if (isMain(import.meta.url)) main().catch((e: unknown) => {
  console.error(`vm-profile: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});

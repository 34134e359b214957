// Driver-only ring benchmark with a C peer (issue 12 item 1): what the DRIVER costs per request —
// adding a chain, the kick decision (EVENT_IDX suppression), used processing with every check on
// what the device wrote, completion delivery — against a minimal device loop in the same process
// that does no device work: it moves each available chain to used (split: copies the head id and
// writes len = the chain's writable length; packed: writes id and len and flips the flags).
//
// Requests are blk-like: a 16-byte readable header and a 1-byte writable status (two descriptors,
// no indirect tables), queue size 256, EVENT_IDX negotiated, the driver polling (used-buffer
// notifications disabled), the device re-arming its avail event at every pass (so every batch's
// kick notifies; notify is a counter).
//
// Two JS levels are measured, both over the real driver code (createVirtqueue, RequestQueue):
//   vq  Virtqueue.add / kick / popUsed, completion = a plain callback per token
//   rq  RequestQueue.submit / submitMany / processUsed, completion = the request's promise
//   cb  RequestQueue.submitCb / submitManyCb / processUsed, completion = one callback per request
//       (no promise: the path a driver's hot loop uses; the promise API is layered on it)
//   floor  (split only) bench/ring-floor.ts: ring.c's split path transliterated into one flat
//       JavaScript function (same checks, no SDK): what the work itself costs in JavaScript
// and bench/c/ring.c does the vq level in C on the same ring layout with the same checks (built
// with gcc -O2 into .cache/bench/ at run time). Every case prints req/s and the ratio to C
// measured in this same run. Rates are per second of the process's CPU time (wall-clock req/s is
// printed beside them): on a machine shared with other work that is what stays comparable.
//
//   npm run bench:ring                          best of 3 runs of 0.5 s per case (JS and C in turns)
//   node dist/bench/ring-driver.js --seconds 2 --repeat 5 --json
//   node dist/bench/ring-driver.js --no-c        JS only
//   node dist/bench/ring-driver.js --only split,32   (cases whose name contains every word)

import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { HeapDmaAllocator } from '../lib/mem/dma.js';
import { createVirtqueue } from '../lib/virtio/queue/index.js';
import type { Layout, Segment, Virtqueue } from '../lib/virtio/queue/types.js';
import { RequestQueue, type RequestToken } from '../lib/virtio/request-queue.js';
import { InvalidArgumentError, Option } from 'commander';
import { benchProgram, cliArgs, intIn, isMain, jsonOption, parseWith, SECONDS, usageError, valueOf } from './cli.js';
import { splitFloor } from './ring-floor.js';

const QUEUE_SIZE = 256;
const HEADER_LEN = 16;
const STATUS_LEN = 1;

/**
 * A device that moves every available chain to used and does nothing else. It runs on the
 * driver's thread, between the driver's calls, so it needs no memory barriers: plain typed-array
 * accesses (Atomics would only add their cost to what is measured as the driver's).
 */
interface MinimalDevice {
  /** Marks every chain available now as used; returns how many. */
  step(): number;
}

/** Split ring device side (virtio 1.2 §2.7): avail entries to used elements, avail_event re-armed. */
function splitDevice(dma: HeapDmaAllocator, vq: Virtqueue<unknown>): MinimalDevice {
  const size = QUEUE_SIZE;
  const mask = size - 1;
  const availBytes = dma.view(vq.addresses.driver, 6 + 2 * size);
  const usedBytes = dma.view(vq.addresses.device, 6 + 8 * size);
  const avail = new Uint16Array(availBytes.buffer, availBytes.byteOffset, 3 + size);
  const used16 = new Uint16Array(usedBytes.buffer, usedBytes.byteOffset, 3 + 4 * size);
  const used32 = new Uint32Array(usedBytes.buffer, usedBytes.byteOffset, 1 + 2 * size);
  const availEventAt = 2 + 4 * size;
  let lastAvail = 0;
  let usedIdx = 0;
  return {
    step(): number {
      const availIdx = avail[1]!;
      let n = 0;
      while (lastAvail !== availIdx) {
        const head = avail[2 + (lastAvail & mask)]!;
        const at = 1 + 2 * (usedIdx & mask);
        used32[at] = head;
        used32[at + 1] = STATUS_LEN;
        lastAvail = (lastAvail + 1) & 0xffff;
        usedIdx = (usedIdx + 1) & 0xffff;
        n++;
      }
      if (n > 0) used16[1] = usedIdx;
      used16[availEventAt] = lastAvail; // EVENT_IDX: notify me at the next chain
      return n;
    },
  };
}

/** Packed ring device side (virtio 1.2 §2.8): chains written back as used descriptors in place. */
function packedDevice(dma: HeapDmaAllocator, vq: Virtqueue<unknown>): MinimalDevice {
  const size = QUEUE_SIZE;
  const ringBytes = dma.view(vq.addresses.desc, 16 * size + 8);
  const ring16 = new Uint16Array(ringBytes.buffer, ringBytes.byteOffset, 8 * size + 4);
  const ring32 = new Uint32Array(ringBytes.buffer, ringBytes.byteOffset, 4 * size + 2);
  const deviceOffWrapAt = 8 * size + 2;
  const deviceFlagsAt = 8 * size + 3;
  let slot = 0;
  let wrap = 1;
  ring16[deviceFlagsAt] = 2; // DESC: EVENT_IDX-style notification at off_wrap
  return {
    step(): number {
      let n = 0;
      for (;;) {
        const flags = ring16[slot * 8 + 7]!;
        if (((flags >> 7) & 1) !== wrap || ((flags >> 15) & 1) === wrap) break; // not available
        // Walk the chain (NEXT) to its last descriptor, whose id the device returns (§2.8.6).
        let last = slot;
        let count = 1;
        while (ring16[last * 8 + 7]! & 1) {
          last = last + 1 === size ? 0 : last + 1;
          count++;
        }
        ring16[slot * 8 + 6] = ring16[last * 8 + 6]!;
        ring32[slot * 4 + 2] = STATUS_LEN;
        ring16[slot * 8 + 7] = wrap ? 0x8080 : 0; // AVAIL = USED = wrap: used
        slot += count;
        if (slot >= size) {
          slot -= size;
          wrap ^= 1;
        }
        n++;
      }
      ring16[deviceOffWrapAt] = slot | (wrap << 15);
      return n;
    },
  };
}

interface Case {
  name: string;
  layout: Layout;
  batch: number;
  level: 'vq' | 'rq' | 'cb' | 'floor';
}

/** Every case, in the order they run: split and packed, batch 1 and 32, floor (split only), vq, cb, rq. */
const CASES: Case[] = (['split', 'packed'] as const).flatMap((layout) => [1, 32].flatMap((batch) =>
  (['floor', 'vq', 'cb', 'rq'] as const).filter((level) => level !== 'floor' || layout === 'split')
    .map((level) => ({ name: `${layout} b${batch} ${level}`, layout, batch, level }))));

/** Whether case `c` has `word` in its name ("split b32 vq"; "32" matches b32 too). */
const hasWord = (c: Case, word: string): boolean => c.name.includes(word) || c.name.replace(' b', ' ').includes(word);

interface Result {
  name: string;
  layout: Layout;
  batch: number;
  level: 'vq' | 'rq' | 'cb' | 'floor' | 'c';
  /** Requests per second of wall time. */
  perSecond: number;
  /** Requests per second of CPU time (what the ratios use). */
  perCpuSecond: number;
  /** CPU nanoseconds per request. */
  nsPerRequest: number;
  notifies: number;
}

interface Rig {
  dma: HeapDmaAllocator;
  device: MinimalDevice;
  readable: Segment[][];
  writable: Segment[][];
  notifies: { n: number };
}

function rig<T>(layout: Layout, batch: number): { rig: Rig; vq: Virtqueue<T> } {
  const dma = new HeapDmaAllocator();
  const notifies = { n: 0 };
  const vq = createVirtqueue<T>(layout, {
    index: 0,
    size: QUEUE_SIZE,
    dma,
    checkSegments: true, // as a queue VirtioDevice sets up: every segment looked up in dma
    features: { indirect: false, eventIdx: true },
    notify: () => {
      notifies.n++;
    },
  });
  vq.disableInterrupts(); // a polling driver
  const device = layout === 'split' ? splitDevice(dma, vq as Virtqueue<unknown>) : packedDevice(dma, vq as Virtqueue<unknown>);
  const bufs = dma.alloc(64 * batch);
  const readable: Segment[][] = [];
  const writable: Segment[][] = [];
  for (let i = 0; i < batch; i++) {
    readable.push([{ addr: bufs.iova + BigInt(64 * i), len: HEADER_LEN }]);
    writable.push([{ addr: bufs.iova + BigInt(64 * i + 32), len: STATUS_LEN }]);
  }
  return { rig: { dma, device, readable, writable, notifies }, vq };
}

/**
 * Runs `round` (which completes `batch` requests) for `seconds` of wall time after a warm-up.
 * Returns req/s of wall time and req per second of this process's CPU time (user + system, all
 * threads: JIT and GC included), which the machine's other load disturbs much less.
 */
async function timed(seconds: number, batch: number, round: () => void | Promise<void>): Promise<{ wall: number; cpu: number }> {
  const warm = Date.now() + 300;
  while (Date.now() < warm) {
    for (let i = 0; i < 100; i++) {
      const p = round();
      if (p) await p;
    }
  }
  let done = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < until) {
    for (let i = 0; i < 64; i++) {
      const p = round(); // the vq level is synchronous: no await, no microtask
      if (p) await p;
    }
    done += 64 * batch;
  }
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { wall: done / wall, cpu: done / ((cpu.user + cpu.system) / 1e6) };
}

/** Virtqueue level: add × batch, kick, device pass, popUsed until empty, a callback per token. */
async function measureVq(c: Case, seconds: number): Promise<Result> {
  const { rig: r, vq } = rig<number>(c.layout, c.batch);
  let completed = 0;
  let lenSum = 0;
  const complete = (token: number, len: number): void => {
    completed += token >= 0 ? 1 : 0;
    lenSum += len;
  };
  const { readable, writable, device, batch } = { ...r, batch: c.batch };
  const round = (): void => {
    for (let i = 0; i < batch; i++) vq.add(readable[i]!, writable[i]!, i);
    vq.kick();
    device.step();
    for (let u = vq.popUsed(); u !== null; u = vq.popUsed()) complete(u.token, u.len);
  };
  const rate = await timed(seconds, c.batch, round);
  if (lenSum !== completed * STATUS_LEN || vq.inFlight !== 0) throw new Error(`${c.name}: lost completions`);
  return result(c, rate, r.notifies.n);
}

/** RequestQueue level: submit (batch 1) or submitMany, device pass, processUsed, await the promises. */
async function measureRq(c: Case, seconds: number): Promise<Result> {
  const { rig: r, vq } = rig<RequestToken<number>>(c.layout, c.batch);
  const rq = new RequestQueue<number>(vq);
  const specs = r.readable.map((readable, i) => ({ readable, writable: r.writable[i]!, token: i }));
  const { device } = r;
  let completed = 0;
  const round = c.batch === 1
    ? async (): Promise<void> => {
      const p = rq.submit(specs[0]!.readable, specs[0]!.writable, 0);
      device.step();
      rq.processUsed();
      completed += (await p).len;
    }
    : async (): Promise<void> => {
      const ps = rq.submitMany(specs);
      device.step();
      rq.processUsed();
      for (const done of await Promise.all(ps)) completed += done.len;
    };
  const rate = await timed(seconds, c.batch, round);
  if (completed === 0 || rq.pending !== 0) throw new Error(`${c.name}: lost completions`);
  return result(c, rate, r.notifies.n);
}

/** RequestQueue level without promises: submitCb (batch 1) or submitManyCb, device pass, processUsed. */
async function measureCb(c: Case, seconds: number): Promise<Result> {
  const { rig: r, vq } = rig<RequestToken<number>>(c.layout, c.batch);
  const rq = new RequestQueue<number>(vq);
  const specs = r.readable.map((readable, i) => ({ readable, writable: r.writable[i]!, token: i }));
  const { device } = r;
  let completed = 0;
  let failed = 0;
  const callback = (error: Error | null, len: number): void => {
    if (error) failed++;
    completed += len;
  };
  const round = c.batch === 1
    ? (): void => {
      rq.submitCb(specs[0]!.readable, specs[0]!.writable, 0, callback);
      device.step();
      rq.processUsed();
    }
    : (): void => {
      rq.submitManyCb(specs, callback);
      device.step();
      rq.processUsed();
    };
  const rate = await timed(seconds, c.batch, round);
  if (completed === 0 || failed !== 0 || rq.pending !== 0) throw new Error(`${c.name}: lost completions`);
  return result(c, rate, r.notifies.n);
}

/** The flat JavaScript transliteration of ring.c's split path (bench/ring-floor.ts). */
async function measureFloor(c: Case, seconds: number): Promise<Result> {
  const run = splitFloor(c.batch);
  const rate = await timed(seconds, c.batch, () => {
    run(1);
  });
  return result(c, rate, 0);
}

function result(c: Case, rate: { wall: number; cpu: number }, notifies: number): Result {
  return {
    name: c.name, layout: c.layout, batch: c.batch, level: c.level,
    perSecond: rate.wall, perCpuSecond: rate.cpu, nsPerRequest: 1e9 / rate.cpu, notifies,
  };
}

/** Builds bench/c/ring.c with gcc -O2 into .cache/bench/ (again only when the source is newer). */
function buildC(): string {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const src = `${root}bench/c/ring.c`;
  const outDir = `${root}.cache/bench`;
  const bin = `${outDir}/ring`;
  mkdirSync(outDir, { recursive: true });
  let stale = true;
  try {
    stale = statSync(bin).mtimeMs < statSync(src).mtimeMs;
  } catch {
    stale = true;
  }
  if (stale) execFileSync('gcc', ['-O2', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', bin, src], { stdio: 'inherit' });
  return bin;
}

function runC(bin: string, layout: Layout, batch: number, seconds: number): Result {
  const out = execFileSync(bin, [layout, String(batch), String(seconds)], { encoding: 'utf8' });
  const parsed = JSON.parse(out) as { perSecond: number; perCpuSecond: number; notifies: number };
  return {
    name: `${layout} b${batch} c`, layout, batch, level: 'c',
    perSecond: parsed.perSecond, perCpuSecond: parsed.perCpuSecond, nsPerRequest: 1e9 / parsed.perCpuSecond, notifies: parsed.notifies,
  };
}

/** The words of --only (comma-separated), each in some case's name. */
function onlyWords(text: string): string[] {
  const words = text.split(',').filter((w) => w !== '');
  const unknown = words.find((w) => !CASES.some((c) => hasWord(c, w)));
  if (unknown !== undefined) throw new InvalidArgumentError(`--only: "${unknown}" is in no case's name (cases: ${CASES.map((c) => c.name).join(', ')})`);
  return words;
}

/** The command line: --seconds N --repeat N --only WORDS --json --no-c. Throws CommanderError (exit 2) for a bad one. */
export function parseArgs(argv: readonly string[]): { seconds: number; repeat: number; only: string[]; json: boolean; c: boolean } {
  const program = benchProgram('ring-driver', "The driver's own cost per request on split and packed rings against a minimal device loop, beside bench/c/ring.c (gcc -O2) in turns; rates per second of CPU time.",
    'Run: npm run bench:ring -- [--seconds N] [--repeat N] [--only WORDS] [--json] [--no-c]')
    .addOption(new Option('--seconds <s>', 'timed window of each run of a case, seconds').argParser(valueOf('--seconds', SECONDS)).default(0.5))
    .addOption(new Option('--repeat <n>', 'runs per case, JS and C in turns; the best counts').argParser(valueOf('--repeat', intIn(1, 1000))).default(3))
    .addOption(new Option('--only <words>', 'cases whose name (e.g. "split b32 vq") contains every comma-separated word, e.g. split,32 or floor')
      .argParser(onlyWords).default([], 'all'))
    .addOption(jsonOption())
    .addOption(new Option('--no-c', 'JS only, without the C peer (no gcc needed); default: with it'));
  const { opts } = parseWith(program, argv);
  const only = opts.only as string[];
  if (!CASES.some((c) => only.every((w) => hasWord(c, w)))) throw usageError(`--only ${only.join(',')}: no case has every word (cases: ${CASES.map((c) => c.name).join(', ')})`);
  return { seconds: opts.seconds as number, repeat: opts.repeat as number, only, json: opts.json === true, c: opts.c !== false };
}

async function main(): Promise<void> {
  const { seconds, repeat, only, json, c: withC } = cliArgs(parseArgs);
  const bin = withC ? buildC() : null;
  const rows: { js: Result; c: Result | null }[] = [];
  for (const c of CASES) {
    if (!only.every((w) => hasWord(c, w))) continue;
    const { layout, batch, level } = c;
    // JS and C take turns, so that both see about the same machine load; the best of
    // `repeat` runs of each counts (a run that other processes disturbed is slower, never faster).
    let js: Result | null = null;
    let cr: Result | null = null;
    for (let i = 0; i < repeat; i++) {
      const j = level === 'floor' ? await measureFloor(c, seconds) : level === 'vq' ? await measureVq(c, seconds)
        : level === 'cb' ? await measureCb(c, seconds) : await measureRq(c, seconds);
      if (!js || j.perCpuSecond > js.perCpuSecond) js = j;
      const k = bin ? runC(bin, layout, batch, seconds) : null;
      if (k && (!cr || k.perCpuSecond > cr.perCpuSecond)) cr = k;
    }
    rows.push({ js: js!, c: cr });
  }
  const mhz = (n: number): string => `${(n / 1e6).toFixed(2)} M`;
  console.log(`driver-only ring benchmark: best of ${repeat} runs of ${seconds} s per case, queue size ${QUEUE_SIZE}, 2-descriptor chains, EVENT_IDX, polling`);
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; req/s per second of CPU time (wall-clock req/s in brackets)`);
  console.log('layout  batch  level    JS req/s (wall)      ns/req     C req/s (wall)      ns/req    JS/C  C faster by');
  for (const { js, c } of rows) {
    const cols = [
      js.layout.padEnd(7), String(js.batch).padStart(5), ` ${js.level.padEnd(5)}`,
      `${mhz(js.perCpuSecond).padStart(8)} (${mhz(js.perSecond).padStart(8)})`, js.nsPerRequest.toFixed(0).padStart(7),
    ];
    if (c) {
      cols.push(`${mhz(c.perCpuSecond).padStart(8)} (${mhz(c.perSecond).padStart(8)})`, c.nsPerRequest.toFixed(1).padStart(7),
        (js.perCpuSecond / c.perCpuSecond).toFixed(3).padStart(6), `${(c.perCpuSecond / js.perCpuSecond).toFixed(2)}×`.padStart(9));
    }
    console.log(cols.join('  '));
  }
  console.log('floor: ring.c\'s split path in flat JavaScript (bench/ring-floor.ts, not the SDK); vq: Virtqueue add/kick/popUsed + a callback per token; cb: RequestQueue submitCb/processUsed + a callback per request; rq: RequestQueue submit/processUsed + promises; C: bench/c/ring.c (gcc -O2), the vq level');
  if (json) {
    console.log(JSON.stringify({
      seconds, repeat, queueSize: QUEUE_SIZE, loadavg: loadavg(),
      results: rows.map(({ js, c }) => ({ ...js, c, jsOverC: c ? js.perCpuSecond / c.perCpuSecond : null })),
    }));
  }
}

if (isMain(import.meta.url)) await main();

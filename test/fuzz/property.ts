// The fault fuzzer's property (fast-check): a random device configuration and a random sequence of
// steps (blk-run.ts), run to the end within a deadline. Used by the CI tests (test/sim/fuzz-a and
// fuzz-b, ≥ 10,000 runs together) and by `npm run fuzz -- --runs N --seed S` for long runs; a failure prints the
// seed and path that replay it.

import fc from 'fast-check';
import { BlkRun } from './blk-run.js';
import { NetRun } from './net-run.js';
import { QUIET_FAULTS, faultFor, type Corruption, type RunConfig, type Step } from './run.js';
import { CATALOGUE } from './catalogue.js';
import { FuzzFailure } from './ledger.js';

/** Bound on one run, start to close (a hang is a failure, not a stuck test). */
export const RUN_DEADLINE_MS = 5000;
/** Bound on closing what a failed run left open (ms). */
export const ABANDON_BOUND_MS = 2000;

export interface FuzzStats {
  runs: number;
  requests: number;
  rejected: number;
  /** Request rejections by code. */
  codes: Record<string, number>;
  /** Failed operations (stop, snapshot, reinit, resume, recover) by code. */
  operations: Record<string, number>;
  /** Fault classes injected, by kind. */
  faults: Record<string, number>;
  worstSettleMs: number;
  /** Longest a request stayed pending, issue to settle, over all runs (ms). */
  longestPendingMs: number;
  missedInterrupts: number;
  /** Stops, resets and watchdogs that reached the 30 ms short bound with no fault to explain it (a busy machine). */
  shortBoundTimeouts: number;
  slowestRunMs: number;
  /** Net frames that came back intact but with a stale used length (split ring, a skipped used slot: net-run.ts). */
  staleLengthFrames: number;
}

export function newStats(): FuzzStats {
  return { runs: 0, requests: 0, rejected: 0, codes: {}, operations: {}, faults: {}, worstSettleMs: 0, longestPendingMs: 0, missedInterrupts: 0, shortBoundTimeouts: 0, slowestRunMs: 0, staleLengthFrames: 0 };
}

/**
 * Bounds on silence, stops and resets. Short ones only in runs with a fault that makes the device
 * go quiet (so those runs end fast); elsewhere long enough that a busy machine never trips them —
 * there, a timeout is a failure the fuzzer reports.
 */
const SHORT_BOUNDS = { requestTimeoutMs: 30, stopTimeoutMs: 30 };
const LONG_BOUNDS = { requestTimeoutMs: 2000, stopTimeoutMs: 1000 };

type Config = Omit<RunConfig, 'requestTimeoutMs' | 'stopTimeoutMs'>;

const configArb: fc.Arbitrary<Config> = fc.record({
  type: fc.constantFrom('blk', 'blk', 'blk', 'net'),
  layout: fc.constantFrom('split', 'packed'),
  interrupts: fc.constantFrom('auto', 'poll'),
  state: fc.constantFrom('ring-state', 'suspend', 'none'),
  mode: fc.constantFrom('drain', 'hold'),
  latency: fc.constantFrom(0, 1),
  queueSize: fc.constantFrom(8, 16),
});

const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('none' as const) },
  { weight: 1, arbitrary: fc.constantFrom('index', 'inflight', 'version', 'truncate', 'type', 'address') },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('io' as const), n: fc.integer({ min: 1, max: 12 }), writes: fc.constantFrom(0.3, 0.7, 1) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('wait' as const), ms: fc.constantFrom(0, 0, 1, 3) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('migrate' as const), other: fc.boolean(), corrupt: corruptionArb }) },
  { weight: 1, arbitrary: fc.constant({ op: 'pause' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('fault' as const), fault: fc.nat({ max: CATALOGUE.length * 4 }), count: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'recover' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'config' as const }) },
);

export const runArb = fc.record({ config: configArb, steps: fc.array(stepArb, { minLength: 1, maxLength: 14 }), seed: fc.integer() });

/** A small deterministic generator for the run's own choices (which sector, read or write). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** One run, bounded by RUN_DEADLINE_MS; throws a FuzzFailure when a property breaks. */
export async function runOnce(input: { config: Config; steps: Step[]; seed: number }, stats: FuzzStats): Promise<void> {
  const started = performance.now();
  const quiet = input.steps.some((s) => s.op === 'fault' && QUIET_FAULTS.has(faultFor(input.config, s.fault).kind));
  const config = { ...input.config, ...(quiet ? SHORT_BOUNDS : LONG_BOUNDS) };
  const run = config.type === 'blk' ? new BlkRun(config, mulberry32(input.seed)) : new NetRun(config, mulberry32(input.seed));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FuzzFailure(`the run did not end within ${RUN_DEADLINE_MS} ms (a hang); faults: ${run.faults.map((f) => f.kind).join(', ') || 'none'}`)), RUN_DEADLINE_MS);
  });
  try {
    await Promise.race([deadline, (async () => {
      await run.open();
      for (const step of input.steps) {
        await run.step(step);
        run.ledger.rethrow();
      }
      await run.finish();
    })()]);
  } catch (e) {
    // A run that failed part-way still has its driver open (a poll loop, timers): close it, or
    // the process never ends after the report.
    const stuck = await run.abandon(ABANDON_BOUND_MS);
    if (stuck && e instanceof FuzzFailure) throw new FuzzFailure(`${e.message}; then ${stuck}`);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  run.ledger.rethrow();
  if (run.ledger.issued !== run.ledger.resolved + run.ledger.rejected) {
    throw new FuzzFailure(`${run.ledger.issued} requests issued, ${run.ledger.resolved + run.ledger.rejected} settled`);
  }
  stats.runs++;
  stats.requests += run.ledger.issued;
  stats.rejected += run.ledger.rejected;
  for (const [code, n] of run.ledger.codes) stats.codes[code] = (stats.codes[code] ?? 0) + n;
  for (const [code, n] of run.ledger.operationCodes) stats.operations[code] = (stats.operations[code] ?? 0) + n;
  for (const f of run.faults) stats.faults[f.kind] = (stats.faults[f.kind] ?? 0) + 1;
  stats.worstSettleMs = Math.max(stats.worstSettleMs, run.ledger.worstSettleMs);
  stats.longestPendingMs = Math.max(stats.longestPendingMs, run.ledger.longestPendingMs);
  stats.missedInterrupts += run.missedInterrupts;
  stats.shortBoundTimeouts += run.ledger.shortBoundTimeouts;
  if (run instanceof NetRun) stats.staleLengthFrames += run.staleLengthFrames;
  stats.slowestRunMs = Math.max(stats.slowestRunMs, performance.now() - started);
}

/** Runs the property `runs` times from `seed`; resolves with the stats, rejects with fast-check's report (seed and path). */
export async function fuzz(runs: number, seed: number, path?: string): Promise<FuzzStats> {
  const stats = newStats();
  await fc.assert(fc.asyncProperty(runArb, (input) => runOnce(input, stats)), {
    numRuns: runs, seed, ...(path ? { path } : {}), endOnFailure: true, includeErrorInReport: true,
  });
  return stats;
}

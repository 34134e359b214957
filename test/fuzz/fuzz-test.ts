// The fault fuzzer in CI: ≥ 10,000 random runs (test/fuzz/property.ts) of traffic, stops, snapshot
// files and reinits on the same and a second device, interleaved with device faults from the
// catalogue. Properties: no crash, no hang, every request settles exactly once, data is never stale
// or corrupt, nothing is done twice, and every error carries the code its fault class names.
// Two halves (fuzz-a, fuzz-b: 5,000 runs each from their own seeds) keep each file within the
// tier's per-file timeout; `npm test` runs them side by side (each mostly waits on its deadlines,
// scripts/run-tests.mjs). UVIRTIO_FUZZ_RUNS and UVIRTIO_FUZZ_SEED override the count and seed.

import t from 'tap';
import { fuzz } from './property.js';
import { CATALOGUE } from './catalogue.js';

export function fuzzTest(defaultSeed: number): void {
const runs = Number(process.env.UVIRTIO_FUZZ_RUNS ?? 5_000);
const seed = Number(process.env.UVIRTIO_FUZZ_SEED ?? defaultSeed);

t.test(`fault fuzzer: ${runs} runs from seed ${seed}`, async (t) => {
  const started = Date.now();
  const stats = await fuzz(runs, seed);
  t.equal(stats.runs, runs, `${runs} runs, each within its deadline, every property held`);
  t.comment(`fuzz: ${stats.requests} requests, ${stats.rejected} rejected, worst settle after a detected failure ${stats.worstSettleMs.toFixed(1)} ms, longest pending ${stats.longestPendingMs.toFixed(0)} ms, missed interrupts made up ${stats.missedInterrupts}, short-bound timeouts of a busy machine ${stats.shortBoundTimeouts}, slowest run ${stats.slowestRunMs.toFixed(0)} ms, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.comment(`fuzz: request codes ${JSON.stringify(stats.codes)}`);
  t.comment(`fuzz: operation codes ${JSON.stringify(stats.operations)}`);
  t.comment(`fuzz: faults ${JSON.stringify(stats.faults)}`);
  if (runs >= 1000) {
    for (const f of CATALOGUE) {
      t.ok((stats.faults[f.kind] ?? 0) > 0, `fault class ${f.kind} was exercised`);
      // Each class that must show shows its own code, on a request or on an operation.
      const own = f.codes[0];
      if (own) t.ok((stats.codes[own] ?? 0) + (stats.operations[own] ?? 0) > 0, `${f.kind} was reported as ${own}`);
    }
  }
});
}

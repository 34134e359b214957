// The fault fuzzer ends after a failure: a run that breaks part-way (a property fails inside a
// step, or the run's deadline passes) closes its driver and devices, so the process exits with the
// report instead of living on in the driver's poll loop until the test runner's timeout. Each case
// runs in a child process that injects the failure (a patched step) into a polling net run — the
// configuration of the CI failure that hung (seed 20261129, run 654) — and must exit by itself,
// well inside the child's bound.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve('dist');
const url = (p: string) => JSON.stringify(pathToFileURL(join(dist, p)).href);
/** The child's bound: it ends in about a second when the fuzzer cleans up, never when it does not. */
const CHILD_BOUND_MS = 30_000;

function child(failure: string, interrupts: 'poll' | 'auto') {
  const body = `
    const { NetRun } = await import(${url('test/fuzz/net-run.js')});
    const { FuzzFailure } = await import(${url('test/fuzz/ledger.js')});
    const { runOnce, newStats } = await import(${url('test/fuzz/property.js')});
    const step = NetRun.prototype.step;
    NetRun.prototype.step = async function (s) { await step.call(this, s); ${failure} };
    const input = { config: { type: 'net', layout: 'split', interrupts: '${interrupts}', state: 'ring-state', mode: 'drain', latency: 1, queueSize: 8 },
      steps: [{ op: 'io', n: 9, writes: 1 }, { op: 'wait', ms: 1 }], seed: 5 };
    const started = Date.now();
    try { await runOnce(input, newStats()); console.log(JSON.stringify({ failed: false })); }
    catch (e) { console.log(JSON.stringify({ failed: true, fuzzFailure: e instanceof FuzzFailure, message: e.message, ms: Date.now() - started })); }
  `;
  const started = Date.now();
  // Without tap's NODE_OPTIONS: its hooks in the child could hold the event loop and hide a hang's end.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', body], { encoding: 'utf8', timeout: CHILD_BOUND_MS, env });
  return { ...r, wallMs: Date.now() - started, report: JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as Record<string, unknown> };
}

for (const interrupts of ['poll', 'auto'] as const) {
  t.test(`a property that fails inside a step (${interrupts}): the report, then the process ends`, async (t) => {
    const r = child(`throw new FuzzFailure('injected: a property failed');`, interrupts);
    t.equal(r.signal, null, `the child ended by itself within ${CHILD_BOUND_MS} ms (it took ${r.wallMs} ms)`);
    t.equal(r.status, 0, r.stderr);
    t.match(r.report, { failed: true, fuzzFailure: true, message: /^injected: a property failed$/ }, 'the failure is reported as it was thrown');
  });
}

t.test('a run that hangs past its deadline: the deadline is reported, then the process ends', async (t) => {
  // The step never returns; the driver (polling) stays open until the run gives up on it.
  const r = child(`await new Promise(() => {});`, 'poll');
  t.equal(r.signal, null, `the child ended by itself within ${CHILD_BOUND_MS} ms (it took ${r.wallMs} ms)`);
  t.equal(r.status, 0, r.stderr);
  t.match(r.report, { failed: true, fuzzFailure: true, message: /did not end within \d+ ms \(a hang\)/ }, 'the hang is reported as one');
});

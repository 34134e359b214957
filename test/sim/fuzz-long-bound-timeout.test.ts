// The fuzzer excuses a bound's timeout no fault explains (ledger.shortBoundTimeouts) only when
// that bound was its short 30 ms one. A run whose steps hold a quiet fault (completion-silence …)
// gets the short bounds, but its stops and reinits before that fault is injected still run under
// the long 1000 ms bound (FuzzRun.stopTimeoutMs): a timeout there is a device or SDK that did not
// answer in a second, a finding the run must report, not a busy machine.

import t from 'tap';
import { BlkRun } from '../fuzz/blk-run.js';
import { FuzzFailure } from '../fuzz/ledger.js';
import { newStats, runOnce } from '../fuzz/property.js';
import { CATALOGUE } from '../fuzz/catalogue.js';
import { faultFor, type RunConfig } from '../fuzz/run.js';
import { DeviceError } from '../../lib/errors.js';

const config = { type: 'blk', layout: 'split', interrupts: 'auto', state: 'suspend', mode: 'drain', latency: 0, queueSize: 8 } as const satisfies Partial<RunConfig>;

t.test('a stop that times out under the long bound, before the run\'s quiet fault, fails the run', async (t) => {
  const silence = [...Array(CATALOGUE.length * 4).keys()].find((i) => faultFor(config, i).kind === 'completion-silence');
  t.not(silence, undefined, 'completion-silence applies to this configuration');
  // The stand-in for a device that never acknowledges the stop: the driver's stop() ends with its
  // own bound's E_STOP_TIMEOUT, after that bound (no fault was injected yet).
  const proto = BlkRun.prototype as unknown as { openDriver(this: unknown, tr: unknown): Promise<{ stop(o: { timeoutMs: number }): Promise<string> }> };
  const open = proto.openDriver;
  const bounds: number[] = [];
  proto.openDriver = async function (tr) {
    const driver = await open.call(this, tr);
    driver.stop = (o) => {
      bounds.push(o.timeoutMs);
      return new Promise((_, reject) => setTimeout(() => reject(new DeviceError('E_STOP_TIMEOUT', `the stop did not complete within ${o.timeoutMs} ms (test)`)), o.timeoutMs));
    };
    return driver;
  };
  t.teardown(() => {
    proto.openDriver = open;
  });
  const stats = newStats();
  const failure = await runOnce({ config, steps: [{ op: 'io', n: 2, writes: 1 }, { op: 'pause' }, { op: 'fault', fault: silence!, count: 1 }], seed: 1 }, stats)
    .then(() => null, (e: unknown) => e);
  t.same(bounds, [1000], 'the stop ran under the long bound');
  t.ok(failure instanceof FuzzFailure, 'the run fails');
  t.match((failure as Error | null)?.message, /stop failed with E_STOP_TIMEOUT/);
  t.equal(stats.shortBoundTimeouts, 0, 'not counted as a short bound\'s timeout');
});

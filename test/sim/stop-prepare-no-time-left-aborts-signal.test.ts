// README (step 5) and StopPreparation: a preparation "still running at the deadline, or leaving no
// time, fails the stop (E_STOP_TIMEOUT, the device not asked to stop) ...; either way `signal` is
// aborted with that error". One that finishes at or after the deadline (it leaves no time) does
// fail the stop with E_STOP_TIMEOUT, but its signal is never aborted: awaitPreparation clears its
// timer once the preparation settles, and Migration.stop's later `Date.now() >= deadline` check
// throws without aborting. Whatever the preparation left watching the signal (a task of its own,
// a port it closed and reopens on abort) never hears that the stop was given up. Breaker 26.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { UvirtioError } from '../../lib/errors.js';
import type { QueueSet } from '../../lib/virtio/queue-set.js';

const code = (e: unknown): string => (e instanceof UvirtioError ? e.code : `foreign ${String(e)}`);
const reasonOf = (s: AbortSignal | null): string => (s === null ? 'never called' : !s.aborted ? 'not aborted' : code(s.reason));

/** A preparation that works (synchronously) until just past its deadline, then resolves. */
function lateFinisher(): { prepare: (deadline: number, signal: AbortSignal) => Promise<void>; signal: () => AbortSignal | null } {
  let seen: AbortSignal | null = null;
  return {
    prepare: async (deadline, signal) => {
      seen = signal;
      while (Date.now() <= deadline + 2) { /* busy: the stop's timer cannot fire meanwhile */ }
    },
    signal: () => seen,
  };
}

t.test('VirtioDevice.stop: a preparation that leaves no time fails the stop, and its signal is aborted with that error', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const d = await VirtioDevice.open(opened.transport, {});
  t.teardown(() => d.close());
  await d.driverOk();
  const late = lateFinisher();
  const got = await d.stop({ timeoutMs: 50 }, late.prepare).then(() => 'ok', code);
  t.equal(got, 'E_STOP_TIMEOUT', 'the stop fails: no time was left');
  t.equal(d.phase, 'live', 'the device was not asked to stop');
  t.equal(reasonOf(late.signal()), 'E_STOP_TIMEOUT', "the preparation's signal is aborted with the stop's error");
});

t.test('QueueSet.stop: the same through a driver', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 5000 });
  t.teardown(() => blk.close());
  const late = lateFinisher();
  const queues = (blk as unknown as { queues: QueueSet }).queues;
  t.equal(await queues.stop({ timeoutMs: 50 }, late.prepare).then(() => 'ok', code), 'E_STOP_TIMEOUT', 'the stop fails');
  t.equal(reasonOf(late.signal()), 'E_STOP_TIMEOUT', "the preparation's signal is aborted with the stop's error");
  t.equal(await blk.read(0, 1).then(() => 'ok', code), 'ok', 'and the queues were not left paused: reads go on');
});

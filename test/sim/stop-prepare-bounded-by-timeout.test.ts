// A driver's stop preparation (QueueSet.stop / VirtioDevice.stop `prepare`) that never resolves:
// README says timeoutMs bounds the preparation and the device's stop together, so the stop must
// settle (a typed error) within its bound, and a close() meanwhile must end it with E_CLOSED.
// Found by a breaker (fixed: the stop hung for ever, the lock held, even after close()).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { UvirtioError } from '../../lib/errors.js';
import type { QueueSet } from '../../lib/virtio/queue-set.js';
import { settledCode } from '../support/codes.js';


const queuesOf = (d: BlkDriver): QueueSet => (d as unknown as { queues: QueueSet }).queues;

t.test('a preparation that never resolves: the stop settles with a typed error within its timeoutMs (generous slack)', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 5000 });
  t.teardown(() => blk.close());
  const got = await settledCode(queuesOf(blk).stop({ timeoutMs: 300 }, () => new Promise<void>(() => undefined)), 5000);
  t.not(got, 'HANG', 'the stop is bounded by its timeoutMs (300 ms), not left pending for ever');
  t.not(got, 'ok', 'and it does not claim to have stopped');
  t.match(got, /^E_/, 'it rejects with a UvirtioError code');
  t.equal(await settledCode(blk.read(0, 1), 5000), 'ok', 'the device still serves requests afterwards (the lock and queues were released)');
});

t.test('a preparation that never resolves, then close(): the stop rejects with E_CLOSED', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 5000 });
  const stopping = queuesOf(blk).stop({ timeoutMs: 60000 }, () => new Promise<void>(() => undefined));
  await new Promise((r) => setTimeout(r, 20));
  t.equal(await settledCode(blk.close(), 5000), 'ok', 'close() completes');
  t.equal(await settledCode(stopping, 5000), 'E_CLOSED', 'the stop under way ends with E_CLOSED, as README says a close() ends every operation');
});

t.test("the preparation's signal: aborted with the stop's own error when the stop gives up on it, never for a stop that went on", async (t) => {
  const codeOf = (s: AbortSignal | null): string | null => (s?.reason instanceof UvirtioError ? s.reason.code : s?.aborted ? `foreign ${String(s.reason)}` : null);
  const untilAborted = (s: AbortSignal): Promise<void> => new Promise((r) => s.addEventListener('abort', () => r(), { once: true }));

  // At the deadline: E_STOP_TIMEOUT, and the preparation hears it (it ends its wait on the event).
  const a = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(a.transport, { requestTimeoutMs: 5000 });
  t.teardown(() => blk.close());
  let seen: AbortSignal | null = null;
  let endedAfterAbort = false;
  const got = await settledCode(queuesOf(blk).stop({ timeoutMs: 200 }, async (_deadline, signal) => {
    seen = signal;
    await untilAborted(signal);
    endedAfterAbort = true;
  }), 5000);
  t.equal(got, 'E_STOP_TIMEOUT', 'the stop fails at its bound');
  t.equal(codeOf(seen), 'E_STOP_TIMEOUT', "the signal was aborted with the stop's error");
  await new Promise((r) => setImmediate(r));
  t.ok(endedAfterAbort, 'a preparation waiting on the signal ends there, not at some later bound of its own');
  t.equal(await settledCode(blk.read(0, 1), 5000), 'ok', 'the preparation ended after the stop gave up, and paused nothing: reads go on');

  // A close() meanwhile: E_CLOSED, the signal's reason too.
  const b = await openTransport('sim:blk?latency=5');
  const blk2 = await BlkDriver.open(b.transport, { requestTimeoutMs: 5000 });
  let seen2: AbortSignal | null = null;
  const stopping = queuesOf(blk2).stop({ timeoutMs: 60000 }, async (_deadline, signal) => {
    seen2 = signal;
    await untilAborted(signal);
  });
  await new Promise((r) => setTimeout(r, 20));
  await blk2.close();
  t.equal(await settledCode(stopping, 5000), 'E_CLOSED', 'the stop ends with E_CLOSED');
  t.equal(codeOf(seen2), 'E_CLOSED', 'so does the signal');

  // A preparation that finishes in time: the signal stays clear, the device stops.
  const c = await openTransport('sim:blk?latency=5');
  const blk3 = await BlkDriver.open(c.transport, { requestTimeoutMs: 5000 });
  t.teardown(() => blk3.close());
  let seen3: AbortSignal | null = null;
  t.equal(await settledCode(queuesOf(blk3).stop({ timeoutMs: 2000 }, async (_deadline, signal) => { seen3 = signal; }), 5000), 'ok', 'the stop goes on');
  t.equal(codeOf(seen3), null, 'and the signal was never aborted');
});

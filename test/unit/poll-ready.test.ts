// lib/sys/libc.ts pollReadableAsync (the worker way of lib/sys/eventfd-watch.ts) hands back which
// fds poll(2) saw ready (revents), so only the eventfds that fired are read.
import t from 'tap';
import * as libc from '../../lib/sys/libc.js';

const poll = (fds: number[]): Promise<{ err: Error | null; ready: readonly boolean[]; ms: number }> => {
  const started = Date.now();
  return new Promise((resolve) => libc.pollReadableAsync(fds, (err, ready) => resolve({ err, ready, ms: Date.now() - started })));
};

void t.test('ready names exactly the readable eventfds', async (t) => {
  const fds = [libc.eventfd(), libc.eventfd(), libc.eventfd()];
  t.teardown(() => fds.forEach((fd) => libc.close(fd)));
  libc.eventfdSignal(fds[1]!);
  libc.eventfdSignal(fds[2]!, 5n);
  const { err, ready } = await poll(fds);
  t.equal(err, null);
  t.same(ready, [false, true, true]);
  t.equal(libc.eventfdTake(fds[2]!), 5n, 'nothing was read on the caller\'s behalf');
});

void t.test('a wait that times out reports none ready, bounded by the slice', async (t) => {
  const fd = libc.eventfd();
  t.teardown(() => libc.close(fd));
  const { err, ready, ms } = await poll([fd]);
  t.equal(err, null);
  t.same(ready, [false]);
  t.ok(ms < libc.ASYNC_POLL_SLICE_MS + 2000, `returned after ${ms} ms (slice ${libc.ASYNC_POLL_SLICE_MS} ms)`);
});

// The root cause of the reinit stall (issue 10), without a daemon: a worker-thread poll armed
// before the interrupt routing changed returns afterwards. Its readiness must be dispatched to the
// handlers of the set as it is now; running the old handler read the eventfd and dropped the
// notification (with EVENT_IDX, for good).
import t from 'tap';
import * as libc from '../../lib/sys/libc.js';
import { POLL } from '../../lib/sys/socket.js';
import { Watcher, type Watched } from '../../lib/transport/vhost-user/watcher.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function handler(fd: number, name: string, calls: string[]): Watched {
  return { fd, events: POLL.IN, ready: () => {
    calls.push(`${name}:${libc.eventfdTake(fd)}`);
  } };
}

t.test('a poll that returns after the set changed runs the current handler, never the old one', async (t) => {
  const fd = libc.eventfd();
  const calls: string[] = [];
  let set = [handler(fd, 'old', calls)];
  const w = new Watcher(() => set);
  w.refresh(); // a poll is out on a worker thread with the old routing
  // Before the event loop gets back to that poll: the routing changes (a reinit) and the device notifies.
  set = [handler(fd, 'new', calls)];
  w.refresh();
  libc.eventfdSignal(fd);
  await until(() => calls.length > 0, 'the notification');
  await new Promise((r) => setTimeout(r, 20));
  t.same(calls, ['new:1'], 'the notification reached the current handler, once');
  w.stop();
  w.whenIdle(() => libc.close(fd));
});

t.test('the handler of every notification runs, including after the set emptied and filled again', async (t) => {
  const fd = libc.eventfd();
  const calls: string[] = [];
  let set: Watched[] = [handler(fd, 'a', calls)];
  const w = new Watcher(() => set);
  w.refresh();
  libc.eventfdSignal(fd);
  await until(() => calls.length === 1, 'the first notification');
  set = []; // interrupts off: no poll is held
  w.refresh();
  libc.eventfdSignal(fd);
  set = [handler(fd, 'b', calls)];
  w.refresh(); // on again: the pending notification is seen
  await until(() => calls.length === 2, 'the second notification');
  t.same(calls, ['a:1', 'b:1']);
  w.stop();
  w.whenIdle(() => libc.close(fd));
});

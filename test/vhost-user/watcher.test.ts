// The root cause of the reinit stall (issue 10), without a daemon: a wait armed before the
// interrupt routing changed comes back afterwards. Its readiness must be dispatched to the
// handlers of the set as it is now; running the old handler read the eventfd and dropped the
// notification (with EVENT_IDX, for good). Both ways of waiting (lib/sys/eventfd-watch.ts).
import fs from 'node:fs';
import t from 'tap';
import * as libc from '../../lib/sys/libc.js';
import type { EventfdWaitMode } from '../../lib/sys/eventfd-watch.js';
import { Watcher, type Watched } from '../../lib/transport/vhost-user/watcher.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function handler(fd: number, name: string, calls: string[]): Watched {
  return { fd, ready: (count) => {
    calls.push(`${name}:${count}`);
  } };
}

for (const mode of ['libuv', 'worker'] as EventfdWaitMode[]) {
  t.test(`${mode}: a wait that returns after the set changed runs the current handler, never the old one`, async (t) => {
    const fd = libc.eventfd();
    const calls: string[] = [];
    let set = [handler(fd, 'old', calls)];
    const w = new Watcher(() => set, 'test', mode);
    w.refresh(); // a wait is out with the old routing
    // Before the event loop gets back to that wait: the routing changes (a reinit) and the device notifies.
    set = [handler(fd, 'new', calls)];
    w.refresh();
    libc.eventfdSignal(fd);
    await until(() => calls.length > 0, 'the notification');
    await new Promise((r) => setTimeout(r, 20));
    t.same(calls, ['new:1'], 'the notification reached the current handler, once');
    w.stop();
    libc.close(fd);
  });

  t.test(`${mode}: the handler of every notification runs, including after the set emptied and filled again`, async (t) => {
    const fd = libc.eventfd();
    const calls: string[] = [];
    let set: Watched[] = [handler(fd, 'a', calls)];
    const w = new Watcher(() => set, 'test', mode);
    w.refresh();
    libc.eventfdSignal(fd);
    await until(() => calls.length === 1, 'the first notification');
    set = []; // interrupts off: nothing is watched
    w.refresh();
    libc.eventfdSignal(fd);
    set = [handler(fd, 'b', calls)];
    w.refresh(); // on again: the pending notification is seen
    await until(() => calls.length === 2, 'the second notification');
    t.same(calls, ['a:1', 'b:1']);
    w.stop();
    libc.close(fd);
  });

  t.test(`${mode}: an fd that left the set without a refresh keeps its notification for the next routing`, async (t) => {
    const fd = libc.eventfd();
    const calls: string[] = [];
    let set: Watched[] = [handler(fd, 'a', calls)];
    const w = new Watcher(() => set, 'test', mode);
    w.refresh();
    set = []; // the routing changed and nobody called refresh() yet
    libc.eventfdSignal(fd, 3n);
    await new Promise((r) => setTimeout(r, 50));
    t.same(calls, [], 'no stale handler ran');
    t.equal(libc.eventfdTake(fd), 3n, 'the count went back to the eventfd');
    w.stop();
    libc.close(fd);
  });
}

t.test('a call eventfd that can no longer be watched is a process warning (E_INTERRUPT_DELIVERY), not a crash', async (t) => {
  const fd = libc.eventfd();
  const warnings: string[] = [];
  const warned = (w: Error & { code?: string }): void => { warnings.push(`${w.code}: ${w.message}`); };
  process.on('warning', warned);
  t.teardown(() => { process.off('warning', warned); });
  const calls: string[] = [];
  const w = new Watcher(() => [handler(fd, 'a', calls)], 'vhost-user:test');
  const before = new Set(anonEventfds());
  w.refresh();
  const dup = anonEventfds().filter((x) => !before.has(x));
  await new Promise((r) => setTimeout(r, 30));
  libc.close(dup[0]!); // the watch's own duplicate, closed by someone else
  libc.eventfdSignal(fd);
  await until(() => warnings.length > 0, 'the warning');
  t.match(warnings[0], /^E_INTERRUPT_DELIVERY: vhost-user:test: call eventfd/);
  t.same(calls, []);
  w.refresh(); // the next routing change watches it again
  await until(() => calls.length === 1, 'the notification, watched again');
  t.same(calls, ['a:1'], 'the signal was not lost');
  w.stop();
  libc.close(fd);
});

function anonEventfds(): number[] {
  return fs.readdirSync('/proc/self/fd').filter((n) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${n}`) === 'anon_inode:[eventfd]';
    } catch {
      return false;
    }
  }).map(Number);
}

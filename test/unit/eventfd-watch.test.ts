// lib/sys/eventfd-watch.ts, both ways of waiting (the main thread's libuv loop, a worker's
// poll(2)): what MSI-X (lib/vfio/msix.ts) and the vhost call eventfds (watcher.ts) rely on.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { EventfdWatch, eventfdWait, type EventfdWaitMode } from '../../lib/sys/eventfd-watch.js';
import * as libc from '../../lib/sys/libc.js';

const tick = (ms = 30): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await tick(2);
  }
}

/** The eventfds this process has open, by number. */
function eventfds(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${name}`) === 'anon_inode:[eventfd]') out.push(Number(name));
    } catch {
      // the directory's own fd, gone
    }
  }
  return out;
}

interface Rig {
  watch: EventfdWatch;
  fired: [number, bigint][];
  errors: [number, Error][];
}

function rig(mode: EventfdWaitMode, onFire?: (fd: number, count: bigint) => void): Rig {
  const r: Rig = { fired: [], errors: [], watch: undefined as unknown as EventfdWatch };
  r.watch = new EventfdWatch({
    mode,
    onFire: (fd, count) => {
      r.fired.push([fd, count]);
      onFire?.(fd, count);
    },
    onError: (fd, e) => r.errors.push([fd, e]),
  });
  return r;
}

t.test('the way to wait is chosen once per process; UVIRTIO_EVENTFD_WAIT=worker forces the worker', async (t) => {
  const w = eventfdWait();
  t.ok(w.reason.length > 0, `${w.mode}: ${w.reason}`);
  t.equal(eventfdWait(), w, 'the same choice on every call');
  const module = fileURLToPath(new URL('../../lib/sys/eventfd-watch.js', import.meta.url));
  const ask = (value: string): { mode: string; reason: string; warning?: string } => {
    const code = `process.on('warning', (w) => { globalThis.warned = w.code; });
      const m = await import(${JSON.stringify(module)});
      const w = m.eventfdWait();
      setImmediate(() => console.log(JSON.stringify({ ...w, warning: globalThis.warned })));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, UVIRTIO_EVENTFD_WAIT: value }, encoding: 'utf8', timeout: 30_000 });
    return JSON.parse(r.stdout) as { mode: string; reason: string; warning?: string };
  };
  t.match(ask('worker'), { mode: 'worker', reason: 'UVIRTIO_EVENTFD_WAIT=worker' });
  const bad = ask('fast');
  t.equal(bad.warning, 'E_INVALID_ARGUMENT', 'a value that means nothing is a warning, not a crash');
  t.equal(bad.mode, w.mode, 'and is ignored');
});

for (const mode of ['libuv', 'worker'] as EventfdWaitMode[]) {
  const skip = mode === 'libuv' && eventfdWait().mode !== 'libuv' ? `this Node cannot watch an eventfd on its loop: ${eventfdWait().reason}` : false;

  t.test(`${mode}: a signal fires its fd's handler once, with the count; several before the loop turns fire once`, { skip }, async (t) => {
    const fds = [libc.eventfd(), libc.eventfd()];
    const r = rig(mode);
    t.equal(r.watch.mode, mode);
    r.watch.set(fds);
    libc.eventfdSignal(fds[1]!);
    await until(() => r.fired.length === 1, 'the signal');
    await tick();
    t.same(r.fired, [[fds[1], 1n]], 'the signalled fd only, once');
    r.fired.length = 0;
    libc.eventfdSignal(fds[0]!);
    libc.eventfdSignal(fds[0]!);
    libc.eventfdSignal(fds[0]!, 5n);
    await until(() => r.fired.length === 1, 'the signals');
    await tick();
    t.same(r.fired, [[fds[0], 7n]], 'three signals before the loop turned: one firing, their sum');
    t.equal(libc.eventfdTake(fds[0]!), 0n, 'the counter was cleared');
    r.watch.close();
    fds.forEach((fd) => libc.close(fd));
  });

  t.test(`${mode}: a handler that throws does not stop delivery, to it or to the others`, { skip }, async (t) => {
    const fds = [libc.eventfd(), libc.eventfd()];
    const warnings: string[] = [];
    const warned = (w: Error & { code?: string }): void => { warnings.push(w.code ?? ''); };
    process.on('warning', warned);
    t.teardown(() => { process.off('warning', warned); });
    const r = rig(mode, (fd) => {
      if (fd === fds[0]) throw new Error('handler bug');
    });
    r.watch.set(fds);
    libc.eventfdSignal(fds[0]!);
    libc.eventfdSignal(fds[1]!);
    await until(() => r.fired.length === 2 && warnings.length === 1, 'both handlers and the warning');
    t.same(warnings, ['E_CALLBACK_THREW'], 'the throw became a process warning');
    libc.eventfdSignal(fds[0]!);
    libc.eventfdSignal(fds[1]!);
    await until(() => r.fired.length === 4, 'both handlers again');
    t.same(r.fired.map(([fd]) => fd).sort(), [fds[0], fds[0], fds[1], fds[1]].sort(), 'both fds fired twice');
    r.watch.close();
    fds.forEach((fd) => libc.close(fd));
  });

  t.test(`${mode}: close() with a signal pending neither fires nor crashes, and leaves the signal`, { skip }, async (t) => {
    const fd = libc.eventfd();
    const r = rig(mode);
    r.watch.set([fd]);
    await tick(); // the wait is out
    libc.eventfdSignal(fd);
    r.watch.close();
    r.watch.close();
    r.watch.set([fd]);
    await tick(100);
    t.same(r.fired, [], 'nothing fired');
    t.equal(libc.eventfdTake(fd), 1n, 'the signal is still in the counter');
    libc.close(fd);
  });

  t.test(`${mode}: an fd let go keeps its signal; the caller may close its fd at once`, { skip }, async (t) => {
    const fds = [libc.eventfd(), libc.eventfd()];
    const r = rig(mode);
    r.watch.set(fds);
    await tick();
    r.watch.set([fds[1]!]);
    libc.close(fds[0]!); // closed right after it left the set, with the wait possibly still out
    const other = libc.eventfd();
    libc.eventfdSignal(other);
    libc.eventfdSignal(fds[1]!);
    await until(() => r.fired.length === 1, 'the watched fd');
    await tick();
    t.same(r.fired, [[fds[1], 1n]]);
    t.same(r.errors, [], 'no error');
    r.watch.close();
    libc.close(fds[1]!);
    libc.close(other);
  });

  t.test(`${mode}: its duplicate closed under it is an error for that fd, not a crash; the others go on`, { skip }, async (t) => {
    const fds = [libc.eventfd(), libc.eventfd()];
    const r = rig(mode);
    r.watch.set([fds[0]!]);
    await tick();
    const before = new Set(eventfds());
    r.watch.set(fds);
    const dup = eventfds().filter((fd) => !before.has(fd));
    t.equal(dup.length, 1, 'one duplicate made for the new fd');
    await tick(); // (closed before the loop's next turn, libuv's epoll_ctl ADD would abort: see eventfd-watch.ts)
    libc.close(dup[0]!); // someone else's bug: our duplicate's number closed
    libc.eventfdSignal(fds[1]!);
    await until(() => r.errors.length === 1, 'the error');
    t.equal(r.errors[0]![0], fds[1], 'reported for that fd');
    t.match(r.errors[0]![1].message, /EBADF/);
    libc.eventfdSignal(fds[0]!);
    await until(() => r.fired.length === 1, 'the other fd');
    t.same(r.fired, [[fds[0], 1n]], 'the other fd still fires; the lost one never did');
    r.watch.close();
    fds.forEach((fd) => libc.close(fd));
  });

  t.test(`${mode}: no fd is leaked`, { skip }, async (t) => {
    const warm = rig(mode); // the loop's own lazily made fds are not the watch's
    const w0 = libc.eventfd();
    warm.watch.set([w0]);
    libc.eventfdSignal(w0);
    await until(() => warm.fired.length === 1, 'warm-up');
    warm.watch.close();
    libc.close(w0);
    await tick(100);
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let round = 0; round < 3; round++) {
      const fds = [libc.eventfd(), libc.eventfd(), libc.eventfd()];
      const r = rig(mode);
      r.watch.set(fds);
      fds.forEach((fd) => libc.eventfdSignal(fd));
      await until(() => r.fired.length === 3, 'the signals');
      r.watch.set(fds.slice(1));
      r.watch.set([fds[0]!]);
      r.watch.close();
      fds.forEach((fd) => libc.close(fd));
    }
    await until(() => fs.readdirSync('/proc/self/fd').length === before, `the fd count back at ${before} (now ${fs.readdirSync('/proc/self/fd').length})`);
    t.pass('as many fds open as before');
  });
}

for (const mode of ['libuv', 'worker'] as EventfdWaitMode[]) {
  const skip = mode === 'libuv' && eventfdWait().mode !== 'libuv' ? `this Node cannot watch an eventfd on its loop: ${eventfdWait().reason}` : false;

  // libuv aborted the process on these (epoll_ctl EPERM); the worker read a file's bytes as a count
  // and re-polled an always-readable fd without end.
  t.test(`${mode}: an fd that is not an eventfd (a file, a directory, /dev/null) is an E_INVALID_ARGUMENT error, not an abort or a spin`, { skip }, async (t) => {
    const others = [fs.openSync(fileURLToPath(import.meta.url), 'r'), fs.openSync('/tmp', 'r'), fs.openSync('/dev/null', 'r')];
    const fd = libc.eventfd();
    const r = rig(mode);
    r.watch.set([...others, fd]);
    t.same(r.errors.map(([x, e]) => [x, (e as Error & { code?: string }).code]), others.map((x) => [x, 'E_INVALID_ARGUMENT']), 'each refused, at once');
    libc.eventfdSignal(fd);
    await until(() => r.fired.length === 1, 'the eventfd still fires');
    await tick();
    t.same(r.fired, [[fd, 1n]], 'only the eventfd fired, once');
    r.watch.close();
    [...others, fd].forEach((x) => libc.close(x));
  });

  t.test(`${mode}: an error handler that throws is a warning: set() does not throw`, { skip }, async (t) => {
    const warnings: string[] = [];
    const warned = (w: Error & { code?: string }): void => { warnings.push(w.code ?? ''); };
    process.on('warning', warned);
    t.teardown(() => { process.off('warning', warned); });
    const watch = new EventfdWatch({ mode, onFire: () => {}, onError: () => { throw new Error('handler bug'); } });
    t.doesNotThrow(() => watch.set([0x7fff]), 'set() with a bad fd does not throw');
    await until(() => warnings.length === 1, 'the warning');
    t.same(warnings, ['E_CALLBACK_THREW']);
    watch.close();
  });
}

// Waiting for eventfds (eventfd(2)) to be signalled, with a handler per fd run on the main thread.
// Two ways to wait, one chosen per process (eventfdWait()):
//   libuv   each fd is a libuv stream on Node's own event loop (uv_pipe_open through Node's
//           internal Pipe handle, wrapped in a net.Socket): epoll wakes the main thread, libuv's
//           read(2) of the 8-byte counter clears it, the 'data' event runs the handler. About
//           4 µs from a signal to the handler on this project's host, against 34 µs for:
//   worker  a poll(2) on a libuv worker thread through koffi's asynchronous call (libc.ts
//           pollReadableAsync), re-armed each time it returns; the fds it found readable are read
//           on the main thread. Used when Node's Pipe handle is missing or refused (a newer Node,
//           the permission model) or UVIRTIO_EVENTFD_WAIT=worker.
// Ownership: the watch never reads, waits on or closes the caller's fd: it watches its own
// duplicate (libc.dup, the same eventfd and counter), closed when the fd leaves the set — by
// libuv when the stream is destroyed, or after the outstanding poll(2) returned, never under it.
// So a caller may close its fd whenever it likes after taking it out of the set. A duplicate
// closed by someone else (EBADF, POLLNVAL) is reported and forgotten, never closed again here —
// except that libuv closes the number it holds when the failed stream goes, at once. (One closed
// by someone else before the loop's next turn after set() — before libuv's epoll_ctl ADD — makes
// libuv abort the process: no code of ours closes a number it did not open.)
// Coalescing: signals that arrive before the counter is read are one firing (their sum is the
// count), as several MSI-X messages before the interrupt is serviced are one interrupt.

import net from 'node:net';
import { debuglog } from 'node:util';
import { UsageError, UvirtioError } from '../errors.js';
import { Errno, SysError } from './errno.js';
import * as libc from './libc.js';

/** How eventfds are waited for: on the main thread's event loop ('libuv'), or by a worker thread's poll(2). */
export type EventfdWaitMode = 'libuv' | 'worker';

/** The process's choice of {@link EventfdWaitMode} and why it was made. */
export interface EventfdWait {
  /** The way eventfds are waited for in this process. */
  readonly mode: EventfdWaitMode;
  /** Why: the detection's result, or the environment variable that forced it. */
  readonly reason: string;
}

/** The environment variable that forces a mode: `worker`, or `libuv` (the default when available). */
export const EVENTFD_WAIT_ENV = 'UVIRTIO_EVENTFD_WAIT';

interface PipeHandle {
  open(fd: number): number;
  close(): void;
}
interface PipeBinding {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

const debug = debuglog('uvirtio');
let chosen: { wait: EventfdWait; pipe: PipeBinding | null } | undefined;

/** Node's Pipe handle, or why it cannot watch an eventfd here (probed once with a real eventfd). */
function pipeBinding(): PipeBinding | string {
  let b: Partial<PipeBinding>;
  try {
    b = (process as unknown as { binding(name: string): Partial<PipeBinding> }).binding('pipe_wrap');
  } catch (e) {
    return `process.binding('pipe_wrap') refused: ${(e as Error).message}`;
  }
  if (typeof b?.Pipe !== 'function' || typeof b.constants?.SOCKET !== 'number') return "process.binding('pipe_wrap') has no Pipe handle";
  const pipe = b as PipeBinding;
  let fd: number;
  try {
    fd = libc.eventfd();
  } catch (e) {
    return `no eventfd to probe uv_pipe_open with: ${(e as Error).message}`;
  }
  let h: PipeHandle | undefined;
  try {
    h = new pipe.Pipe(pipe.constants.SOCKET);
    const err = h.open(fd);
    if (err === 0) return pipe; // h.close() below closes fd with the handle
    libc.close(fd);
    return `uv_pipe_open on an eventfd failed (${err})`;
  } catch (e) {
    libc.close(fd);
    return `uv_pipe_open on an eventfd threw: ${(e as Error).message}`;
  } finally {
    h?.close();
  }
}

function choose(): { wait: EventfdWait; pipe: PipeBinding | null } {
  const asked = process.env[EVENTFD_WAIT_ENV];
  if (asked !== undefined && asked !== '' && asked !== 'libuv' && asked !== 'worker') {
    // Reported, not thrown: this runs inside a transport's constructor or interrupt set-up.
    process.emitWarning(new UsageError('E_INVALID_ARGUMENT', `${EVENTFD_WAIT_ENV}=${asked} is not a way to wait for eventfds: ignored`,
      `set it to 'libuv' or 'worker', or unset it`));
  }
  if (asked === 'worker') return { wait: { mode: 'worker', reason: `${EVENTFD_WAIT_ENV}=worker` }, pipe: null };
  const pipe = pipeBinding();
  if (typeof pipe === 'string') return { wait: { mode: 'worker', reason: pipe }, pipe: null };
  return { wait: { mode: 'libuv', reason: 'Node\'s Pipe handle opens an eventfd (uv_pipe_open)' }, pipe };
}

/**
 * The way this process waits for eventfds (MSI-X vectors, vhost call eventfds), chosen on the first
 * call and kept: 'libuv' where Node's Pipe handle opens an eventfd, else 'worker'; the
 * UVIRTIO_EVENTFD_WAIT environment variable forces 'worker'. Logged under NODE_DEBUG=uvirtio.
 * Never throws: UVIRTIO_EVENTFD_WAIT set to anything but 'libuv' or 'worker' is ignored with a
 * process warning (E_INVALID_ARGUMENT).
 */
export function eventfdWait(): EventfdWait {
  if (!chosen) {
    chosen = choose();
    debug('eventfd wait: %s (%s)', chosen.wait.mode, chosen.wait.reason);
  }
  return chosen.wait;
}

/** What an {@link EventfdWatch} calls. */
export interface EventfdWatchOptions {
  /**
   * Called on the main thread when a watched fd fired, with the caller's fd and the counter's value
   * (≥ 1; several signals before it was read add up). The counter is already cleared. A handler that
   * throws does not stop delivery, to it or to the others: the exception becomes a process warning
   * (code E_CALLBACK_THREW).
   */
  onFire(fd: number, count: bigint): void;
  /**
   * Called when an fd can no longer be watched (its duplicate failed: EBADF when someone closed
   * it, EMFILE when none could be made; or poll(2) itself failed): the fd has left the set; a later
   * set() that names it watches it again.
   */
  onError(fd: number, error: Error): void;
  /** The way to wait (default: eventfdWait().mode); 'libuv' where it is unavailable falls back to 'worker'. */
  mode?: EventfdWaitMode;
}

/** One way of waiting over a set of fds (libuv streams, or a worker-thread poll). */
interface Waiter {
  set(fds: readonly number[]): void;
  close(): void;
}

/**
 * Watches a set of eventfds and runs a handler for each one signalled (see the top of this file).
 * While it watches any fd it keeps the process alive, as a pending wait always has.
 */
export class EventfdWatch {
  /** The way this watch waits (fixed at construction). */
  readonly mode: EventfdWaitMode;
  private readonly waiter: Waiter;
  private closed = false;

  /** Never throws (the way to wait is chosen by eventfdWait() on the first watch). */
  constructor(private readonly options: EventfdWatchOptions) {
    const auto = eventfdWait();
    const pipe = chosen?.pipe ?? null;
    this.mode = pipe && (options.mode ?? auto.mode) === 'libuv' ? 'libuv' : 'worker';
    const deliver = (fd: number, count: bigint): void => this.deliver(fd, count);
    const failed = (fd: number, e: Error): void => this.failed(fd, e);
    this.waiter = this.mode === 'libuv' ? new StreamWaiter(pipe!, deliver, failed) : new PollWaiter(deliver, failed);
  }

  /**
   * Watches exactly `fds` from now on: fds not named any more are let go at once (a signal they
   * hold stays in their counter, for whoever watches them next), new ones are duplicated and
   * watched; fds already watched keep their watch. Never throws: an fd that cannot be watched
   * goes to onError. After close(), does nothing.
   */
  set(fds: readonly number[]): void {
    if (!this.closed) this.waiter.set(fds);
  }

  /** Stops watching every fd (nothing fires from now on, a signal pending included). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiter.close();
  }

  private deliver(fd: number, count: bigint): void {
    if (this.closed) return;
    try {
      this.options.onFire(fd, count);
    } catch (e) {
      process.emitWarning(new UvirtioError('E_CALLBACK_THREW', `the handler of eventfd ${fd} threw: ${String((e as Error)?.message ?? e)}`,
        'fix the handler; delivery went on', { cause: e }));
    }
  }

  private failed(fd: number, e: Error): void {
    if (!this.closed) this.options.onError(fd, e);
  }
}

/** The sum of the 8-byte counters read (one per read(2); Node delivers each read on its own). */
function counted(chunk: Buffer): bigint {
  let n = 0n;
  for (let i = 0; i + 8 <= chunk.length; i += 8) n += chunk.readBigUInt64LE(i);
  return n;
}

/** The 'libuv' way: one net.Socket over a Pipe handle per fd, reading on the main thread. */
class StreamWaiter implements Waiter {
  private readonly streams = new Map<number, net.Socket>();

  constructor(private readonly pipe: PipeBinding, private readonly fire: (fd: number, n: bigint) => void,
    private readonly fail: (fd: number, e: Error) => void) {}

  set(fds: readonly number[]): void {
    const keep = new Set(fds);
    for (const [fd, s] of this.streams) {
      if (!keep.has(fd)) {
        this.streams.delete(fd);
        s.destroy(); // closes the duplicate (uv_close closes the fd at once)
      }
    }
    for (const fd of keep) if (!this.streams.has(fd)) this.add(fd);
  }

  private add(fd: number): void {
    let dup: number;
    try {
      dup = libc.dup(fd);
    } catch (e) {
      this.fail(fd, e as Error);
      return;
    }
    const h = new this.pipe.Pipe(this.pipe.constants.SOCKET);
    let err: number;
    try {
      err = h.open(dup);
    } catch {
      err = -Errno.EINVAL!;
    }
    if (err !== 0) {
      h.close();
      libc.close(dup);
      this.fail(fd, new SysError('uv_pipe_open', -err, `eventfd ${fd}`));
      return;
    }
    const s = new net.Socket({ handle: h, readable: true, writable: false } as net.SocketConstructorOpts);
    this.streams.set(fd, s);
    s.on('data', (chunk: Buffer) => {
      const n = counted(chunk);
      if (this.streams.get(fd) === s && n > 0n) this.fire(fd, n);
    });
    // A read error (EBADF: the duplicate was closed under the stream) destroys the stream; libuv
    // then closes the number it holds, which is dead already. Reported, never thrown.
    const lost = (e: Error): void => {
      if (this.streams.get(fd) !== s) return;
      this.streams.delete(fd);
      s.destroy();
      this.fail(fd, e);
    };
    s.on('error', lost);
    s.on('end', () => lost(new SysError('read', Errno.EIO!, `eventfd ${fd}: end of file`)));
  }

  close(): void {
    this.set([]);
  }
}

/** A watched fd on the worker path: its duplicate (an object, so a re-added fd is a new entry). */
interface Polled {
  dup: number;
}

/** The 'worker' way: one koffi poll(2) over every duplicate plus a wake-up eventfd. */
class PollWaiter implements Waiter {
  private readonly entries = new Map<number, Polled>();
  /** Duplicates let go while a poll was out on them: closed when it returns. */
  private retired: number[] = [];
  private wake: { fd: number; unhook: () => void } | null = null;
  private polling = false;
  private closed = false;

  constructor(private readonly fire: (fd: number, n: bigint) => void, private readonly fail: (fd: number, e: Error) => void) {}

  set(fds: readonly number[]): void {
    const keep = new Set(fds);
    let changed = false;
    for (const [fd, e] of this.entries) {
      if (keep.has(fd)) continue;
      this.entries.delete(fd);
      this.retire(e.dup);
      changed = true;
    }
    for (const fd of keep) {
      if (this.entries.has(fd)) continue;
      try {
        this.entries.set(fd, { dup: libc.dup(fd) });
        changed = true;
      } catch (e) {
        this.fail(fd, e as Error);
      }
    }
    if (!this.polling) this.arm();
    else if (changed) libc.eventfdSignal(this.wake!.fd); // the poll returns and re-arms with the new set
  }

  close(): void {
    this.closed = true;
    this.set([]);
    if (!this.polling) this.release();
  }

  private retire(dup: number): void {
    if (this.polling) this.retired.push(dup);
    else libc.close(dup);
  }

  private release(): void {
    if (!this.wake) return;
    this.wake.unhook();
    libc.close(this.wake.fd);
    this.wake = null;
  }

  private arm(): void {
    if (this.polling || this.closed || this.entries.size === 0) return;
    if (!this.wake) {
      const fd = libc.eventfd();
      this.wake = { fd, unhook: libc.wakeOnExit(fd) };
    }
    const armed = [...this.entries];
    this.polling = true;
    libc.pollReadableAsync([this.wake.fd, ...armed.map(([, e]) => e.dup)], (err, ready) => this.returned(armed, err, ready));
  }

  private returned(armed: [number, Polled][], err: Error | null, ready: readonly boolean[]): void {
    this.polling = false;
    if (ready[0]) libc.eventfdTake(this.wake!.fd);
    this.retired.forEach((dup) => libc.close(dup));
    this.retired = [];
    if (this.closed) {
      this.release();
      return;
    }
    if (err) {
      // A failing poll(2) would fail again at once: every fd leaves the set (reported) rather than spin.
      for (const [fd, e] of [...this.entries]) {
        this.entries.delete(fd);
        libc.close(e.dup);
        this.fail(fd, err);
      }
      return;
    }
    // Only fds still in the set are read: one let go meanwhile keeps its signal for its next watcher.
    const fired: [number, bigint][] = [];
    armed.forEach(([fd, e], i) => {
      if (!ready[i + 1] || this.entries.get(fd) !== e) return;
      try {
        const n = libc.eventfdTake(e.dup);
        if (n > 0n) fired.push([fd, n]);
      } catch (x) {
        this.entries.delete(fd);
        if (!(x instanceof SysError && x.errno === Errno.EBADF)) libc.close(e.dup); // EBADF: not ours to close any more
        this.fail(fd, x as Error);
      }
    });
    this.arm(); // before the handlers: whatever they do, delivery goes on
    for (const [fd, n] of fired) this.fire(fd, n);
  }
}

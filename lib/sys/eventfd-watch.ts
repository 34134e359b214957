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
// libuv abort the process: no code of ours closes a number it did not open. So would an fd epoll
// refuses — a file, a directory, /dev/null — which both ways refuse before watching: only eventfds,
// by /proc/self/fd, else onError with E_INVALID_ARGUMENT.)
// Coalescing: signals that arrive before the counter is read are one firing (their sum is the
// count), as several MSI-X messages before the interrupt is serviced are one interrupt.

import { debuglog } from 'node:util';
import { UsageError, UvirtioError } from '../errors.js';
import { PollWaiter, StreamWaiter, type PipeBinding, type PipeHandle, type Waiter } from './eventfd-waiters.js';
import * as libc from './libc.js';
import { thrownMessage } from '../util/shown.js';

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
   * it, EMFILE when none could be made; or poll(2) itself failed; or it is not an eventfd:
   * E_INVALID_ARGUMENT): the fd has left the set; a later set() that names it watches it again.
   * What it throws becomes a process warning (E_CALLBACK_THREW), as for onFire.
   */
  onError(fd: number, error: Error): void;
  /** The way to wait (default: eventfdWait().mode); 'libuv' where it is unavailable falls back to 'worker'. */
  mode?: EventfdWaitMode;
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
      process.emitWarning(new UvirtioError('E_CALLBACK_THREW', `the handler of eventfd ${fd} threw: ${thrownMessage(e)}`,
        'fix the handler; delivery went on', { cause: e }));
    }
  }

  private failed(fd: number, e: Error): void {
    if (this.closed) return;
    try {
      this.options.onError(fd, e);
    } catch (x) {
      // From set() (which never throws) or from an event callback, where a throw would crash the process.
      process.emitWarning(new UvirtioError('E_CALLBACK_THREW', `the error handler of eventfd ${fd} threw: ${thrownMessage(x)}`,
        'fix the handler', { cause: x }));
    }
  }
}

// The two ways lib/sys/eventfd-watch.ts waits for eventfds (its top comment says which is used
// when, and the ownership rules both keep): libuv streams on the main thread, and a worker
// thread's poll(2). Each watches duplicates of the caller's fds and reports through two callbacks.

import fs from 'node:fs';
import net from 'node:net';
import { UsageError } from '../errors.js';
import { Errno, SysError } from './errno.js';
import * as libc from './libc.js';

/** Node's internal Pipe handle (process.binding('pipe_wrap')): libuv's uv_pipe_t. */
export interface PipeHandle {
  /** uv_pipe_open: 0, or a negative errno; the handle owns the fd from then on. */
  open(fd: number): number;
  /** uv_close: closes the fd it holds. */
  close(): void;
}
/** What process.binding('pipe_wrap') gives. */
export interface PipeBinding {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

/** One way of waiting over a set of fds. */
export interface Waiter {
  /** Watches exactly `fds` from now on. */
  set(fds: readonly number[]): void;
  /** Watches nothing any more, for good. */
  close(): void;
}

/** Closes a duplicate of ours; one someone else closed already (EBADF) is not an error here. */
function closeDup(dup: number): void {
  try {
    libc.close(dup);
  } catch {
    // gone already: see the top of this file
  }
}

/**
 * Why `fd` cannot be watched as an eventfd, or null when it is one (or /proc cannot say: dup then
 * reports a bad fd). Anything else would break either way of waiting: libuv aborts the process
 * when epoll refuses the fd (a regular file, a directory, /dev/null: EPERM), and poll(2) finds a
 * file always readable, so the worker would read file bytes as counts and re-poll without end.
 */
export function notAnEventfd(fd: number): UsageError | null {
  let target: string;
  try {
    target = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
  if (target === 'anon_inode:[eventfd]') return null;
  return new UsageError('E_INVALID_ARGUMENT', `fd ${fd} is not an eventfd (it is ${target}): not watched`,
    'pass fds made by eventfd(2) (libc.eventfd())');
}

/** The sum of the 8-byte counters read (one per read(2); Node delivers each read on its own). */
function counted(chunk: Buffer): bigint {
  let n = 0n;
  for (let i = 0; i + 8 <= chunk.length; i += 8) n += chunk.readBigUInt64LE(i);
  return n;
}

/** The 'libuv' way: one net.Socket over a Pipe handle per fd, reading on the main thread. */
export class StreamWaiter implements Waiter {
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
    const refused = notAnEventfd(fd);
    if (refused) {
      this.fail(fd, refused);
      return;
    }
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
      closeDup(dup);
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
export class PollWaiter implements Waiter {
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
      const refused = notAnEventfd(fd);
      if (refused) {
        this.fail(fd, refused);
        continue;
      }
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
    else closeDup(dup);
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
    this.retired.forEach(closeDup);
    this.retired = [];
    if (this.closed) {
      this.release();
      return;
    }
    if (err) {
      // A failing poll(2) would fail again at once: every fd leaves the set (reported) rather than spin.
      for (const [fd, e] of [...this.entries]) {
        this.entries.delete(fd);
        closeDup(e.dup);
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
        if (!(x instanceof SysError && x.errno === Errno.EBADF)) closeDup(e.dup); // EBADF: not ours to close any more
        this.fail(fd, x as Error);
      }
    });
    this.arm(); // before the handlers: whatever they do, delivery goes on
    for (const [fd, n] of fired) this.fire(fd, n);
  }
}

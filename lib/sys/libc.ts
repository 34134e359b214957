// libc through koffi: the handful of system calls VFIO needs. Each wrapper checks the result and
// throws a SysError naming the call, its argument and the errno. Numbers are Linux x86_64 values
// (include/uapi/asm-generic/fcntl.h, mman-common.h, linux/eventfd.h). libc is dlopened on the
// first call, not at import (koffi.ts): importing this file costs nothing.

import { check, Errno, lastErrno, SysError } from './errno.js';
import { koffi, lazily, libcLibrary } from './koffi.js';

export const O = { RDONLY: 0, WRONLY: 1, RDWR: 2, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const PROT = { READ: 1, WRITE: 2 } as const;
export const MAP = { SHARED: 0x01, PRIVATE: 0x02, ANONYMOUS: 0x20, LOCKED: 0x2000, POPULATE: 0x8000, HUGETLB: 0x40000 } as const;
export const EFD = { NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
const SC_PAGESIZE = 30;
const POLLIN = 1;

const c = lazily(() => {
  const lib = libcLibrary();
  return {
    open: lib.func('int open(const char *path, int flags, uint32_t mode)'),
    close: lib.func('int close(int fd)'),
    fcntl: lib.func('int fcntl(int fd, int cmd, ...)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)'),
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: lib.func('int munmap(void *addr, size_t length)'),
    mlock: lib.func('int mlock(void *addr, size_t length)'),
    pread: lib.func('intptr_t pread(int fd, void *buf, size_t count, int64_t offset)'),
    pwrite: lib.func('intptr_t pwrite(int fd, const void *buf, size_t count, int64_t offset)'),
    read: lib.func('intptr_t read(int fd, void *buf, size_t count)'),
    write: lib.func('intptr_t write(int fd, const void *buf, size_t count)'),
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    poll: lib.func('int poll(void *fds, unsigned long nfds, int timeout)'),
    sysconf: lib.func('long sysconf(int name)'),
    memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)'),
    ftruncate: lib.func('int ftruncate(int fd, int64_t length)'),
    flock: lib.func('int flock(int fd, int operation)'),
  };
});

let pageSizeBytes: number | undefined;

/** The page size in bytes (sysconf(_SC_PAGESIZE)): the unit of mmap, mlock and VFIO DMA mappings. */
export function pageSize(): number {
  pageSizeBytes ??= Number(c().sysconf(SC_PAGESIZE));
  return pageSizeBytes;
}

export function open(path: string, flags: number, hint?: string): number {
  return check(c().open(path, flags | O.CLOEXEC, 0) as number, 'open', path, hint);
}

export function close(fd: number): void {
  check(c().close(fd) as number, 'close', String(fd));
}

/** F_DUPFD_CLOEXEC (include/uapi/asm-generic/fcntl.h: F_LINUX_SPECIFIC_BASE + 6). */
const F_DUPFD_CLOEXEC = 1030;

/**
 * A second, close-on-exec descriptor for the open file behind `fd` (fcntl F_DUPFD_CLOEXEC): both
 * name the same file (an eventfd's one counter), and the file lives until both are closed.
 */
export function dup(fd: number): number {
  return check(c().fcntl(fd, F_DUPFD_CLOEXEC, 'int', 0) as number, 'fcntl', `${fd}, F_DUPFD_CLOEXEC`);
}

/**
 * ioctl(fd, request, arg): `arg` is a buffer the kernel reads and/or fills in place (koffi passes a
 * Uint8Array's memory, not a copy), an integer argument, or nothing. Returns the ioctl's result.
 */
export function ioctl(fd: number, request: number, arg?: Uint8Array | number, name = `0x${request.toString(16)}`): number {
  let ret: number;
  if (arg === undefined) ret = c().ioctl(fd, request) as number;
  else if (typeof arg === 'number') ret = c().ioctl(fd, request, 'long', arg) as number;
  else ret = c().ioctl(fd, request, 'void *', arg) as number;
  return check(ret, 'ioctl', `${fd}, ${name}`);
}

/** A mapping of memory: its address, its bytes (an ArrayBuffer over the mapped memory, no copy). */
export interface Mapping {
  readonly address: bigint;
  readonly length: number;
  readonly buffer: ArrayBuffer;
  /** The raw pointer, for munmap/mlock. */
  readonly pointer: unknown;
}

const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

export function mmap(length: number, prot: number, flags: number, fd: number, offset: bigint, what: string): Mapping {
  const pointer: unknown = c().mmap(null, length, prot, flags, fd, offset);
  const address = pointer === null ? 0n : koffi().address(pointer);
  if (address === MAP_FAILED || address === 0n) throw new SysError('mmap', lastErrno(), what);
  return { address, length, pointer, buffer: koffi().view(pointer, length) };
}

export function munmap(m: Mapping): void {
  check(c().munmap(m.pointer, m.length) as number, 'munmap', `0x${m.address.toString(16)}, ${m.length}`);
}

export function mlock(m: Mapping): void {
  check(c().mlock(m.pointer, m.length) as number, 'mlock', `${m.length} bytes`,
    'raise the locked-memory limit (ulimit -l) or run as root');
}

/** Reads exactly buf.length bytes at `offset`; a short read is an error (device regions do not end early). */
export function pread(fd: number, buf: Uint8Array, offset: bigint | number, what: string): void {
  const n = check(Number(c().pread(fd, buf, buf.length, BigInt(offset))), 'pread', what);
  if (n !== buf.length) throw new SysError('pread', Errno.EIO, `${what}: ${n} of ${buf.length} bytes`);
}

export function pwrite(fd: number, buf: Uint8Array, offset: bigint | number, what: string): void {
  const n = check(Number(c().pwrite(fd, buf, buf.length, BigInt(offset))), 'pwrite', what);
  if (n !== buf.length) throw new SysError('pwrite', Errno.EIO, `${what}: ${n} of ${buf.length} bytes`);
}

/** MFD_CLOEXEC (include/uapi/linux/memfd.h). */
export const MFD_CLOEXEC = 1;

/** An anonymous, close-on-exec memory file (memfd_create(2)), to share memory by descriptor. */
export function memfdCreate(name: string): number {
  return check(c().memfd_create(name, MFD_CLOEXEC) as number, 'memfd_create', name);
}

export function ftruncate(fd: number, length: number): void {
  check(c().ftruncate(fd, BigInt(length)) as number, 'ftruncate', `${fd}, ${length}`);
}

/** flock(2) operations (include/uapi/asm-generic/fcntl.h: LOCK_EX 2, LOCK_NB 4). */
const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * Takes an exclusive advisory lock on the open file behind `fd` without waiting (flock(2)
 * LOCK_EX|LOCK_NB): true when taken, false when another open file description holds it
 * (EWOULDBLOCK). The kernel drops it when the last descriptor of that description closes — also
 * when the process dies, so a lock is never left behind by a killed holder. Throws SysError otherwise.
 */
export function tryLockExclusive(fd: number, what: string): boolean {
  const ret = c().flock(fd, LOCK_EX | LOCK_NB) as number;
  if (ret === 0) return true;
  const errno = lastErrno();
  if (errno === Errno.EAGAIN) return false;
  throw new SysError('flock', errno, what);
}

/** A non-blocking, close-on-exec eventfd (eventfd(2)). */
export function eventfd(): number {
  return check(c().eventfd(0, EFD.NONBLOCK | EFD.CLOEXEC) as number, 'eventfd', '0, EFD_NONBLOCK|EFD_CLOEXEC');
}

/** Reads and clears an eventfd's counter without blocking: 0n when it had not fired. */
export function eventfdTake(fd: number): bigint {
  const buf = new Uint8Array(8);
  const n = Number(c().read(fd, buf, 8));
  if (n < 0) {
    const errno = lastErrno();
    if (errno === Errno.EAGAIN) return 0n;
    throw new SysError('read', errno, `eventfd ${fd}`);
  }
  return new DataView(buf.buffer).getBigUint64(0, true);
}

/** Adds `value` to an eventfd's counter (wakes whoever waits on it). */
export function eventfdSignal(fd: number, value = 1n): void {
  const buf = new Uint8Array(8);
  new DataView(buf.buffer).setBigUint64(0, value, true);
  check(Number(c().write(fd, buf, 8)), 'write', `eventfd ${fd}`);
}

/**
 * The longest one worker-thread poll(2) waits before it returns with nothing ready (callers simply
 * arm it again). The bound matters at exit: libuv joins its worker threads when the process ends
 * (uv_library_shutdown), so a poll with no timeout would hold `process.exit()` — and with it
 * Ctrl-C — forever once nothing writes to its fds.
 */
export const ASYNC_POLL_SLICE_MS = 500;

/** Wake-up eventfds of the pollers that run on worker threads: all written when the process exits. */
const exitWakes = new Set<number>();
let exitHooked = false;

/**
 * Registers `fd` (an eventfd among a worker-thread poll's fds) to be written when the process
 * exits, so that poll returns at once instead of after up to ASYNC_POLL_SLICE_MS. Returns the
 * function that unregisters it (call it before closing the fd).
 */
export function wakeOnExit(fd: number): () => void {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => {
      for (const w of exitWakes) c().write(w, EXIT_WAKE, 8);
    });
  }
  exitWakes.add(fd);
  return () => exitWakes.delete(fd);
}
const EXIT_WAKE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

/**
 * Waits on a worker thread until one of `fds` is readable (poll(2) with POLLIN) or
 * ASYNC_POLL_SLICE_MS passed, then calls `done` on the main thread: the 'worker' way of
 * lib/sys/eventfd-watch.ts, for a Node whose event loop cannot watch an eventfd. The wait runs
 * through koffi's asynchronous call, which occupies one libuv worker while it waits. Write to one
 * of the fds to end the wait early. `ready[i]` says whether `fds[i]` was ready when poll returned
 * (POLLIN, POLLERR, POLLHUP or POLLNVAL in revents; all false after a timeout or an error), so the
 * caller reads only those (one syscall each through koffi, which under emulation is not cheap).
 */
export function pollReadableAsync(fds: readonly number[], done: (err: Error | null, ready: readonly boolean[]) => void): void {
  const pfd = new Uint8Array(8 * fds.length); // struct pollfd { int fd; short events; short revents; }
  const view = new DataView(pfd.buffer);
  fds.forEach((fd, i) => {
    view.setInt32(i * 8, fd, true);
    view.setInt16(i * 8 + 4, POLLIN, true);
  });
  const none: readonly boolean[] = fds.map(() => false);
  c().poll.async(pfd, fds.length, ASYNC_POLL_SLICE_MS, (err: unknown, ret: number) => {
    if (err) done(err instanceof Error ? err : new Error(String(err)), none);
    else if (ret < 0) {
      const errno = lastErrno();
      done(errno === Errno.EINTR ? null : new SysError('poll', errno, `${fds.length} fds`), none);
    } else done(null, ret === 0 ? none : fds.map((_, i) => view.getInt16(i * 8 + 6, true) !== 0));
  });
}

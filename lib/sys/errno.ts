// errno → typed errors. Every failing libc call in lib/sys becomes a SysError that carries the
// errno number, its name (from koffi's table of the platform's POSIX codes) and the call that failed.

import { UvirtioError, type ErrorCode } from '../errors.js';
import { koffi, lazily } from './koffi.js';

const table = lazily(() => koffi().os.errno as Readonly<Record<string, number>>);

/**
 * Errno numbers by name, as the running platform defines them (Linux x86_64 here). Read from
 * koffi's table on the first lookup, so importing this file loads nothing (koffi.ts).
 */
export const Errno: Readonly<Record<string, number>> = new Proxy({} as Record<string, number>, {
  get: (_, name) => (typeof name === 'string' ? table()[name] : undefined),
  has: (_, name) => typeof name === 'string' && name in table(),
  ownKeys: () => Reflect.ownKeys(table()),
  getOwnPropertyDescriptor: (_, name) => Reflect.getOwnPropertyDescriptor(table(), name),
});

const names = lazily(() => {
  const m = new Map<number, string>();
  for (const [name, value] of Object.entries(table())) {
    // Some numbers have two names (EAGAIN/EWOULDBLOCK, EDEADLK/EDEADLOCK): keep the first, the usual one.
    if (!m.has(value)) m.set(value, name);
  }
  return m;
});

/** The errno's name ("EBUSY"), or "errno N" for a number the platform does not name. */
export function errnoName(errno: number): string {
  return names().get(errno) ?? `errno ${errno}`;
}

/** A system call that failed. `code` is E_PERMISSION for EACCES/EPERM, E_SYSCALL otherwise. */
export class SysError extends UvirtioError {
  /** The errno number. */
  readonly errno: number;
  /** Its name, "EBUSY". */
  readonly errnoName: string;
  /** The call that failed, "ioctl". */
  readonly syscall: string;
  /**
   * @param syscall the call that failed.
   * @param errno the errno it left.
   * @param what its argument, for the message ("VFIO_GROUP_GET_STATUS", a path).
   * @param hint what to do (default: run as root for EACCES/EPERM).
   */
  constructor(syscall: string, errno: number, what: string, hint?: string) {
    const name = errnoName(errno);
    const permission = errno === Errno.EACCES || errno === Errno.EPERM;
    const code: ErrorCode = permission ? 'E_PERMISSION' : 'E_SYSCALL';
    super(code, `${syscall}(${what}) failed: ${name}`, hint ?? (permission ? 'run as root (VFIO and /proc/self/pagemap need it)' : undefined));
    this.errno = errno;
    this.errnoName = name;
    this.syscall = syscall;
  }
}

/** The errno the last koffi call left behind. */
export function lastErrno(): number {
  return koffi().errno();
}

/** Throws a SysError when a libc call returned a negative number; returns the value otherwise. */
export function check(ret: number, syscall: string, what: string, hint?: string): number {
  if (ret < 0) throw new SysError(syscall, lastErrno(), what, hint);
  return ret;
}

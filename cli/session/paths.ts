// Where sessions live: a private runtime directory (0700) with, per session, a UNIX socket and a
// name lock, and per device, a lock (one agent per device, one agent per session name).
//   $UVIRTIO_RUNTIME_DIR, else $XDG_RUNTIME_DIR/uvirtio, else /run/uvirtio (root), else /tmp/uvirtio-UID
//
// A lock is flock(2) on a file that names its agent: { pid, start, session, flock } — `start` is the
// process's start time (/proc/PID/stat field 22). The kernel drops a flock when its holder dies,
// so a killed agent's lock is free and is taken without removing anything (takeLock).

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { tryLockExclusive } from '../../lib/sys/libc.js';
import { join } from 'node:path';
import { UsageError } from '../../lib/errors.js';
import { formatAddress, parseAddress } from '../../lib/address.js';

/** Where the runtime directory came from, for the error that names it. */
function runtimeSource(): { dir: string; from: string } {
  const own = process.env.UVIRTIO_RUNTIME_DIR;
  if (own !== undefined) {
    if (own === '') {
      throw new UsageError('E_INVALID_ARGUMENT', 'UVIRTIO_RUNTIME_DIR is set but empty: the session runtime directory is not named',
        'set UVIRTIO_RUNTIME_DIR to a private directory (it is created 0700), or unset it for the default');
    }
    return { dir: own, from: 'UVIRTIO_RUNTIME_DIR' };
  }
  if (process.env.XDG_RUNTIME_DIR) return { dir: join(process.env.XDG_RUNTIME_DIR, 'uvirtio'), from: 'XDG_RUNTIME_DIR' };
  return { dir: process.getuid?.() === 0 ? '/run/uvirtio' : `/tmp/uvirtio-${process.getuid?.() ?? 'user'}`, from: 'the default' };
}

/**
 * The session runtime directory, created (0700, owned by this user) if missing. Throws UsageError
 * E_INVALID_ARGUMENT (CLI exit 2: the user's setting) naming the directory and the variable it came
 * from when it is set but empty, is not a directory (a file, a path under a file), cannot be
 * created or belongs to another user.
 */
export function runtimeDir(): string {
  const { dir, from } = runtimeSource();
  const hint = 'set UVIRTIO_RUNTIME_DIR to a private directory of yours (it is created 0700)';
  const source = from === 'the default' ? 'the default session runtime directory' : `the session runtime directory (from ${from})`;
  let st: Stats;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    st = statSync(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'is not a directory (or lies under a file)' : `cannot be created: ${err.code ?? err.message}`;
    throw new UsageError('E_INVALID_ARGUMENT', `${source} ${dir} ${why}`, hint, { cause: e });
  }
  if (!st.isDirectory()) throw new UsageError('E_INVALID_ARGUMENT', `${source} ${dir} is not a directory`, hint);
  if (process.getuid && st.uid !== process.getuid()) {
    throw new UsageError('E_INVALID_ARGUMENT', `${source} ${dir} belongs to another user`, hint);
  }
  try {
    chmodSync(dir, 0o700);
  } catch (e) {
    throw new UsageError('E_INVALID_ARGUMENT', `${source} ${dir} cannot be made private: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, hint, { cause: e });
  }
  return dir;
}

/** A session name: letters, digits, dot, dash, underscore; at most 64; no "/" and no leading dot (no ".."). */
export function checkName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name.startsWith('.')) {
    throw new UsageError('E_INVALID_ARGUMENT', `"${name}" is not a session name`, 'use letters, digits, ".", "-" and "_" (at most 64, not starting with ".")');
  }
  return name;
}

/** The default session name for a device address: "sim:blk?mode=hold" → "sim-blk-mode-hold". */
export function nameFor(address: string): string {
  return address.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64) || 'device';
}

/** The longest path a UNIX socket binds (Linux sun_path: 108 bytes with its NUL); a longer one is cut by the kernel. */
export const SOCKET_PATH_MAX = 107;

export const socketPath = (dir: string, name: string): string => join(dir, `${name}.sock`);

/**
 * The session's socket path, refused (UsageError E_INVALID_ARGUMENT, nothing created) when it is
 * longer than {@link SOCKET_PATH_MAX} bytes: the kernel would bind a truncated path nobody finds.
 */
export function checkSocketPath(dir: string, name: string): string {
  const path = socketPath(dir, name);
  const bytes = Buffer.byteLength(path);
  if (bytes > SOCKET_PATH_MAX) {
    throw new UsageError('E_INVALID_ARGUMENT', `session "${name}" would have the socket ${path}, ${bytes} bytes; a UNIX socket path holds at most ${SOCKET_PATH_MAX}`,
      `use a shorter --name (at most ${Math.max(1, name.length - (bytes - SOCKET_PATH_MAX))} characters here), or a shorter UVIRTIO_RUNTIME_DIR`);
  }
  return path;
}

/**
 * The device's lock file: a readable prefix of the address and a hash of all of it, so that two
 * different addresses never share a lock, however long (device-sim-blk-mode-hold-1a2b3c4d5e6f7a8b.lock).
 */
export function lockPath(dir: string, device: string): string {
  // One spelling per device: the address as uvirtio writes it (an unparsable one as given).
  try {
    device = formatAddress(parseAddress(device));
  } catch {
    // as given
  }
  const hash = createHash('sha256').update(device).digest('hex').slice(0, 16);
  return join(dir, `device-${nameFor(device).slice(0, 40)}-${hash}.lock`);
}

/** The session name's lock (NAME.agent, beside NAME.sock and NAME.log): taken (O_EXCL) by the agent that serves the name, so two agents never share one. */
export const nameLockPath = (dir: string, name: string): string => join(dir, `${name}.agent`);

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The fields of /proc/PID/stat after the command (field 3, the state, first), or null without /proc. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  } catch {
    return null;
  }
}

/** A process's start time (clock ticks after boot, /proc/PID/stat field 22), or null where /proc does not tell. */
export function processStart(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

/** What a lock file says: the agent holding it. */
export interface LockHolder {
  pid: number;
  /** The agent's start time ({@link processStart}); absent in a lock written by an older uvirtio. */
  start?: string | null;
  session: string;
  /** Whether the holder keeps the lock with flock(2) (this uvirtio): then a lock nobody flocks is free. */
  flock?: boolean;
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return typeof h === 'object' && h !== null && Number.isInteger(h.pid) && h.pid > 0 ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the agent a lock names still runs: its pid is alive, not a zombie, and is the same
 * process — the start time the lock recorded; for a lock without one, a session agent for the
 * lock's session (its command line). Where /proc tells nothing, a live pid counts as the agent.
 */
export function holderAlive(h: LockHolder): boolean {
  if (!pidAlive(h.pid)) return false;
  const stat = procStat(h.pid);
  if (stat === null) return true;
  if (stat[0] === 'Z' || stat[0] === 'X') return false;
  if (h.start) return stat[19] === h.start;
  try {
    const argv = readFileSync(`/proc/${h.pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a.endsWith('agent.js')) && argv.includes('--name') && argv[argv.indexOf('--name') + 1] === h.session;
  } catch {
    return true;
  }
}

/** The lock files this process holds: path → the descriptor whose flock(2) is the lock. */
const held = new Map<string, number>();

/** A lock path that cannot be a lock file (a directory, a symlink, a FIFO…): the user's to remove. */
function notALockFile(path: string, what: string, cause?: unknown): UsageError {
  return new UsageError('E_INVALID_ARGUMENT', `the session lock ${path} ${what}`,
    'remove it (uvirtio keeps only its own lock files in the session runtime directory), or set UVIRTIO_RUNTIME_DIR to another directory', cause === undefined ? undefined : { cause });
}

/**
 * Takes the lock at `path` for this process, or returns its live holder. The lock is flock(2) on
 * the file, which the kernel drops when its holder dies, so a killed agent leaves no lock to judge
 * and nothing is ever removed to take one over (removing a stale lock raced: a second taker removed
 * the first one's fresh lock). The file says who holds it ({@link LockHolder}). A holder that
 * unlinked the path (its release) while this process opened it leaves an inode nobody finds: the
 * path is opened again. A lock written without flock (an older uvirtio) counts while its agent runs.
 */
function takeLock(path: string, session: string): LockHolder | null {
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EISDIR') throw notALockFile(path, 'is a directory', e);
      if (code === 'ELOOP') throw notALockFile(path, 'is a symbolic link', e);
      throw e;
    }
    let kept = false;
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw notALockFile(path, 'is not a regular file');
      if (!tryLockExclusive(fd, path)) return readHolder(path) ?? { pid: 0, session: '?' };
      let now: Stats | undefined;
      try {
        now = lstatSync(path);
      } catch {
        now = undefined;
      }
      if (!now || now.ino !== st.ino || now.dev !== st.dev) continue; // released (unlinked) under us: open the path again
      const before = readHolder(path);
      if (before && !before.flock && before.pid !== process.pid && holderAlive(before)) return before;
      const mine = JSON.stringify({ pid: process.pid, start: processStart(process.pid), session, flock: true } satisfies LockHolder);
      ftruncateSync(fd, 0);
      writeSync(fd, mine, 0);
      held.set(path, fd);
      kept = true;
      return null;
    } finally {
      if (!kept) closeSync(fd);
    }
  }
  return readHolder(path) ?? { pid: 0, session: '?' };
}

/**
 * Takes the session name for this process (the agent): refused with E_SESSION_EXISTS when another
 * live agent serves it — two attaches with one --name at once: exactly one gets it.
 */
export function lockName(dir: string, name: string): void {
  const holder = takeLock(nameLockPath(dir, name), name);
  if (holder) {
    throw new UsageError('E_SESSION_EXISTS', `session "${name}" is already attached (agent pid ${holder.pid})`,
      `use it (--session ${name}), detach it first (uvirtio detach --session ${name}), or pick another --name`);
  }
}

/** Takes the device's lock for this process; a lock whose agent is gone is stale and taken over. */
export function lockDevice(dir: string, device: string, session: string): void {
  const holder = takeLock(lockPath(dir, device), session);
  if (holder) {
    throw new UsageError('E_SESSION_EXISTS', `${device} is already attached (session "${holder.session}", agent pid ${holder.pid})`,
      `use that session (--session ${holder.session}), or \`uvirtio detach --session ${holder.session}\` first`);
  }
}

/**
 * Removes the lock at `path` if `pid` holds it. This process's own lock: the path is unlinked while
 * the flock is still held, then the descriptor closed. Another process's (an agent that failed to
 * start, dead or ending): only once its flock is gone — taken here for the removal — and the file
 * still names `pid`; a live holder's lock is never touched.
 */
function unlockIfMine(path: string, pid: number): boolean {
  const own = pid === process.pid ? held.get(path) : undefined;
  if (own !== undefined) {
    held.delete(path);
    rmSync(path, { force: true });
    closeSync(own);
    return true;
  }
  if (readHolder(path)?.pid !== pid) return false; // no lock, or not one of ours to judge
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    if (!tryLockExclusive(fd, path) || readHolder(path)?.pid !== pid) return false;
    rmSync(path, { force: true });
    return true;
  } finally {
    closeSync(fd);
  }
}

/** Removes the device's lock if `pid` holds it (never another agent's lock). */
export function unlockDevice(dir: string, device: string, pid: number): void {
  unlockIfMine(lockPath(dir, device), pid);
}

/** The live agent other than `pid` that holds the session name, or null. */
export function otherNameHolder(dir: string, name: string, pid: number | undefined): LockHolder | null {
  const h = readHolder(nameLockPath(dir, name));
  return h && h.pid !== pid && holderAlive(h) ? h : null;
}

/** Removes the session's socket and name lock if `pid` holds the name (never another agent's). */
export function releaseName(dir: string, name: string, pid: number): void {
  if (readHolder(nameLockPath(dir, name))?.pid !== pid) return;
  rmSync(socketPath(dir, name), { force: true });
  unlockIfMine(nameLockPath(dir, name), pid);
}

/** The inode of `path` (not followed), or null when there is nothing there. */
function inode(path: string): number | null {
  try {
    return lstatSync(path).ino;
  } catch {
    return null;
  }
}

/**
 * Removes session `name`'s socket if it is stale: its name lock names an agent that is gone (killed:
 * it had no time to remove it). Only that socket: if an agent starting under the name meanwhile
 * bound a new one (another inode), or the lock names a live agent, nothing is removed. A socket
 * without a readable name lock is left, unless `refused` (a connection to it was just refused: no
 * agent listens, and one starting writes its lock before it binds). Returns whether it removed it.
 */
export function removeStaleSocket(dir: string, name: string, refused = false): boolean {
  const path = socketPath(dir, name);
  const before = inode(path);
  if (before === null) return false;
  const holder = readHolder(nameLockPath(dir, name));
  if (holder ? holderAlive(holder) : !refused) return false;
  if (inode(path) !== before) return false;
  rmSync(path, { force: true });
  return true;
}

/**
 * Names of the sessions attached: those whose socket exists, less the stale ones, removed here
 * ({@link removeStaleSocket}), so a dead session never makes the default session ambiguous nor
 * shows in `status`.
 */
export function listSessions(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)).filter((name) => !removeStaleSocket(dir, name)).sort();
}

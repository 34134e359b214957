// Snapshot files (docs/snapshot.md#files): atomic writes (a temp file beside the target, fsync,
// rename, fsync of the directory) and bounded reads.

import {
  closeSync, constants, fstatSync, lstatSync, openSync, readSync, rmSync, type Stats,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { SnapshotError } from '../../errors.js';
import { TEMP_NAME, atomicTempPath, removeStaleTemps, writeFileAtomically } from '../../util/atomic-write.js';
import { MAX_SNAPSHOT_FILE_BYTES, SNAPSHOT_FORMAT, type DeviceSnapshot } from './format.js';
import { fault, parseSnapshot, parseSnapshotJson, validateSnapshot, withoutBom } from './validate.js';
import { UsageError } from '../../errors.js';
import { shown } from '../../util/shown.js';

/** E_INVALID_ARGUMENT unless `path` is a non-empty string (Node's own fs would throw a TypeError). */
function checkPath(path: unknown, doing: 'read' | 'write'): void {
  if (typeof path !== 'string' || path === '') {
    throw new UsageError('E_INVALID_ARGUMENT', `the snapshot file to ${doing} must be a path (a non-empty string), got ${typeof path === 'string' ? '""' : shown(path)}`);
  }
}

// A snapshot file is written whole or not at all, and read with bounds: a file that is not a
// regular file (a FIFO, /dev/zero, a directory) or is larger than any snapshot is refused before
// its contents are read, so reading never blocks and never fills memory.

/**
 * The temporary file a write goes through: hidden, beside the target, named after the writer's
 * pid (".cycle-1.json.1234.tmp"). A writer killed before its rename leaves it behind; it is never
 * read as a snapshot (readSnapshotFile refuses the name), and the next write to the same target
 * removes it once its writer is gone.
 * @param path the snapshot file's path.
 * @param pid the writer's process id (default: this process).
 */
export function snapshotTempPath(path: string, pid = process.pid): string {
  return atomicTempPath(path, pid);
}

function ioFault(verb: 'read' | 'write', path: string, why: string, hint: string): SnapshotError {
  return fault('E_SNAPSHOT_IO', `cannot ${verb} ${path}: ${why}`, hint);
}

/** Why a file operation failed, in words, and what to do about it. */
function explain(e: unknown, path: string): { why: string; hint: string } {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  const dir = dirname(path);
  switch (code) {
    case 'ENOENT': return { why: 'no such file or directory', hint: `check the path; for a new file, ${dir} must exist` };
    case 'ENOTDIR': return { why: `a part of ${dir} is not a directory`, hint: 'check the path' };
    case 'EACCES': case 'EPERM': case 'EROFS':
      return { why: `permission denied (${code})`, hint: `use a file and a directory you may read and write (${dir})` };
    case 'ELOOP': return { why: 'too many levels of symbolic links (a symlink loop)', hint: 'name the file itself' };
    case 'ENOSPC': case 'EDQUOT': return { why: `no space left (${code})`, hint: `free space on the file system of ${dir}` };
    case 'ENAMETOOLONG': return { why: 'the path is too long', hint: 'use a shorter path' };
    default: return { why: (e as Error).message, hint: 'check the path' };
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/**
 * An existing target is replaced only when it is a regular file that is empty or a snapshot by its
 * own header (see snapshotHeaderFault); throws E_SNAPSHOT_IO otherwise, having changed nothing.
 */
function checkWriteTarget(path: string): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    const { why, hint } = explain(e, path);
    throw ioFault('write', path, why, hint);
  }
  if (st.isDirectory()) throw ioFault('write', path, 'it is a directory', `name a file in it, e.g. ${join(path, 'snapshot.json')}`);
  if (!st.isFile()) throw ioFault('write', path, `it is ${kindOf(st)}, not a regular file; it is left as it was`, 'name a new file, or an earlier snapshot to replace');
  if (st.size === 0) return;
  const notSnapshot = (why: string): SnapshotError =>
    ioFault('write', path, `it exists and is not a uvirtio snapshot (${why}); it is left as it was`, 'choose another name, or remove the file first');
  if (st.size > MAX_SNAPSHOT_FILE_BYTES) throw notSnapshot(`${st.size} bytes, larger than any snapshot`);
  // Decided by parsing the whole file (bounded as a read is) and checking the snapshot's own header
  // fields exactly: text that merely mentions the format (its JSON Schema, notes) is not a snapshot.
  let text: string;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY);
    try {
      const now = fstatSync(fd);
      if (!now.isFile()) throw notSnapshot(`it is ${kindOf(now)}`);
      const got = readBounded(fd, now.size, MAX_SNAPSHOT_FILE_BYTES);
      if (got === null) throw notSnapshot('larger than any snapshot');
      text = got;
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    const { why, hint } = explain(e, path);
    throw ioFault('write', path, `it exists and cannot be checked (${why})`, hint);
  }
  const why = snapshotHeaderFault(text);
  if (why !== null) throw notSnapshot(why);
}

/**
 * Why `text` is not a uvirtio snapshot by its header, or null when it is one: JSON (a leading BOM
 * allowed, nested no deeper than JSON a snapshot is read from, no key twice in its outer objects)
 * whose top level is an object with `format` exactly {@link SNAPSHOT_FORMAT} and `version` a
 * positive integer (any version: a snapshot another uvirtio wrote is still a snapshot).
 */
function snapshotHeaderFault(text: string): string | null {
  if (!/^\s*\{/.test(withoutBom(text))) return 'not a JSON object';
  let data: unknown;
  try {
    data = parseSnapshotJson(text, 'its text');
  } catch (e) {
    if (e instanceof SnapshotError) return e.message;
    throw e;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return 'its JSON is not an object';
  const { format, version } = data as Record<string, unknown>;
  if (format !== SNAPSHOT_FORMAT) return `it has no "format": "${SNAPSHOT_FORMAT}" at the top level`;
  if (!Number.isSafeInteger(version) || (version as number) < 1) return 'its "version" is not a snapshot version';
  return null;
}

/**
 * Reads an open regular file whole, at most `maxBytes` (at most maxBytes + 1 are read: a file that
 * grows while it is read is still bounded), as UTF-8; null when it holds more than `maxBytes`.
 * @param size the size fstat reported, bytes (the buffer is sized by it, never beyond maxBytes + 1).
 */
function readBounded(fd: number, size: number, maxBytes: number): string | null {
  const buf = Buffer.alloc(Math.min(maxBytes + 1, size + 1));
  let n = 0;
  for (let got = 1; got > 0 && n < buf.length;) {
    got = readSync(fd, buf, n, buf.length - n, null);
    n += got;
  }
  return n > maxBytes ? null : buf.toString('utf8', 0, n);
}

/**
 * Removes the temp files killed writers left in `dir` — only those whose writer is gone, and with
 * `target`, only that file's. writeSnapshotFile() does it for its target; a program that owns a
 * directory of snapshots (`uvirtio rehearse --snapshot-dir`) does it for the directory.
 * Never throws: an unreadable directory is left alone.
 */
export function removeStaleSnapshotTemps(dir: string, target?: string): void {
  removeStaleTemps(dir, target);
}

/**
 * Writes the snapshot atomically: a temp file beside the target (created exclusively, never
 * through a symlink), fsync, rename over the target, fsync of the directory. The target is
 * complete (the old one or the new one) at every moment; a failed write leaves it as it was. An
 * existing target is replaced only when it is a regular file that is empty or a snapshot: parsed
 * whole (at most {@link MAX_SNAPSHOT_FILE_BYTES}), its top level has `format` exactly
 * {@link SNAPSHOT_FORMAT} and a positive integer `version`; text that only mentions them is refused.
 * @throws SnapshotError E_SNAPSHOT_IO (with the errno in words and a hint) when the target may not
 *   be replaced or any step fails.
 */
export function writeSnapshotFile(path: string, snap: DeviceSnapshot): void {
  checkPath(path, 'write');
  // Only a snapshot replaces what the file holds (it may be the last good state).
  validateSnapshot(snap);
  checkWriteTarget(path);
  try {
    rmSync(snapshotTempPath(path), { force: true }); // an earlier process with this pid may have left it
    writeFileAtomically(path, JSON.stringify(snap, null, 2) + '\n', { mode: 0o600, fsync: true });
  } catch (e) {
    const { why, hint } = explain(e, path);
    throw ioFault('write', path, why, hint);
  }
}

/**
 * Reads and validates a snapshot file. Refused before reading: a temp file of an unfinished write,
 * anything but a regular file (opened non-blocking, so a FIFO cannot hold the caller), an empty
 * file, and a file larger than `maxBytes`.
 * @param maxBytes the largest file accepted, bytes (default {@link MAX_SNAPSHOT_FILE_BYTES}).
 * @throws SnapshotError E_SNAPSHOT_IO (cannot open or read, not a regular file, a temp file, too
 *   large), E_SNAPSHOT_TRUNCATED (empty or cut short), and every code parseSnapshot throws.
 */
export function readSnapshotFile(path: string, maxBytes = MAX_SNAPSHOT_FILE_BYTES): DeviceSnapshot {
  checkPath(path, 'read');
  if (TEMP_NAME.test(basename(path))) {
    throw ioFault('read', path, 'it is the temporary file of an unfinished write, not a snapshot',
      'its writer was killed before it finished; take the snapshot again (the next write to that name removes this file)');
  }
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const { why, hint } = explain(e, path);
    throw ioFault('read', path, why, hint);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw ioFault('read', path, `it is ${kindOf(st)}, not a regular file`, 'pass a snapshot file written by `uvirtio snapshot`');
    const tooLarge = (size: string): SnapshotError => ioFault('read', path, `it is ${size} bytes, larger than the ${maxBytes} a snapshot file may be`,
      'this is not a snapshot file; pass one written by `uvirtio snapshot`');
    if (st.size > maxBytes) throw tooLarge(String(st.size));
    if (st.size === 0) throw fault('E_SNAPSHOT_TRUNCATED', `${path} is empty`, 'the file was cut short or never written; take the snapshot again');
    const got = readBounded(fd, st.size, maxBytes);
    if (got === null) throw tooLarge(`more than ${maxBytes}`);
    text = got;
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    const { why, hint } = explain(e, path);
    throw ioFault('read', path, why, hint);
  } finally {
    closeSync(fd);
  }
  return parseSnapshot(text, path);
}


// Writing a file so that it is, at every moment, the old one, the new one complete, or absent: a
// temp file beside it (created exclusively, never through a symlink, named after the writer's pid),
// optionally made durable (the temp fsynced before the rename, the folder after it), renamed over
// it. Temp files a killed writer left are removed by the next write to the same target. Shared by
// the snapshot files (lib/virtio/snapshot/file.ts) and `uvirtio check --junit`.

import { closeSync, constants, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** How {@link writeFileAtomically} writes. */
export interface AtomicWriteOptions {
  /** Permission bits of the new file (e.g. 0o644). */
  mode: number;
  /** fsync the temp file before the rename and the folder after it (default false). */
  fsync?: boolean;
}

/**
 * The temp file a write of `path` goes through: hidden, beside it (the rename stays on one file
 * system), named after the writer's pid: "dir/.name.1234.tmp".
 */
export function atomicTempPath(path: string, pid = process.pid): string {
  return join(dirname(path), `.${basename(path)}.${pid}.tmp`);
}

/** A name {@link atomicTempPath} gives (its pid in group 1). */
export const TEMP_NAME = /^\..+\.(\d+)\.tmp$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files killed writers left in `dir` ({@link atomicTempPath} names whose pid is
 * not alive, never this process's), and with `target` (a file name in `dir`) only that file's.
 * Never throws: an unreadable folder, or a name that cannot be removed, is left alone.
 */
export function removeStaleTemps(dir: string, target?: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (target !== undefined && name !== basename(atomicTempPath(join(dir, target), pid))) continue;
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      rmSync(join(dir, name), { force: true });
    } catch {
      // a directory at that name, or no permission: not ours to judge
    }
  }
}

/**
 * Writes `text` to `path` through {@link atomicTempPath} and a rename, after removing the temps of
 * `path` that killed writers left. On failure the temp file is removed (unless it was not ours:
 * EEXIST, something else sat at its name) and the Node error is rethrown as it was, for the caller
 * to explain; `path` is then as it was. With `fsync`, the folder's fsync after the rename is best
 * effort (some file systems refuse it): the file is complete either way.
 */
export function writeFileAtomically(path: string, text: string, options: AtomicWriteOptions): void {
  removeStaleTemps(dirname(path), basename(path));
  const tmp = atomicTempPath(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, options.mode);
    writeFileSync(fd, text);
    if (options.fsync) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    try {
      if (fd !== undefined) closeSync(fd);
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(tmp, { force: true });
    } catch {
      // a descriptor already gone, or a temp name taken by something not ours to remove
    }
    throw e;
  }
  if (!options.fsync) return;
  try {
    const dirFd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // the file is complete either way
  }
}

// Writing a file so that it is, at every moment, the old one, the new one complete, or absent: a
// temp file beside it (created exclusively, never through a symlink), optionally fsynced, renamed
// over it. Shared by the snapshot files (lib/virtio/snapshot/file.ts) and `uvirtio check --junit`.

import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/** How {@link writeFileAtomically} writes. */
export interface AtomicWriteOptions {
  /** The temp file's path: in the target's folder, so the rename stays on one file system. */
  tmp: string;
  /** Permission bits of the new file (e.g. 0o644). */
  mode: number;
  /** fsync the temp file before the rename (default false). */
  fsync?: boolean;
}

/**
 * Writes `text` to `path` through `options.tmp` and a rename. On failure the temp file is removed
 * (unless it was not ours: EEXIST, something else sat at its name) and the Node error is rethrown
 * as it was, for the caller to explain; `path` is then as it was.
 */
export function writeFileAtomically(path: string, text: string, options: AtomicWriteOptions): void {
  let fd: number | undefined;
  try {
    fd = openSync(options.tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, options.mode);
    writeFileSync(fd, text);
    if (options.fsync) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(options.tmp, path);
  } catch (e) {
    try {
      if (fd !== undefined) closeSync(fd);
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(options.tmp, { force: true });
    } catch {
      // a descriptor already gone, or a temp name taken by something not ours to remove
    }
    throw e;
  }
}

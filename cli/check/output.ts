// Where `uvirtio check --junit FILE` writes: FILE is looked at before the device is opened (a
// directory, or a folder that does not exist or cannot be written, is bad usage: nothing run,
// nothing written), then written atomically after the run — a temp file beside it (created
// exclusively, never through a symlink), renamed over FILE — so FILE is at every moment the old
// one, the new one complete, or absent; a failed write leaves no temp file behind.

import { accessSync, constants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError, UvirtioError } from '../../lib/errors.js';
import { writeFileAtomically } from '../../lib/util/atomic-write.js';
import { thrownMessage } from '../../lib/util/shown.js';

function errno(e: unknown): string {
  return thrownMessage(e); // Node's own: "ENOENT: no such file or directory, open '…'"
}

/**
 * Checks that `path` can take the report: not a directory, in an existing folder this process may
 * write. Throws UsageError E_INVALID_ARGUMENT (exit 2) naming `option` when it cannot.
 */
export function checkOutputTarget(path: string, option: string): void {
  const bad = (why: string): UsageError =>
    new UsageError('E_INVALID_ARGUMENT', `${option} ${path}: ${why}`, `give a file path in a folder you can write (${option} report.xml)`);
  try {
    if (statSync(path).isDirectory()) throw bad('is a directory');
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw bad(errno(e));
  }
  const dir = dirname(path);
  try {
    if (!statSync(dir).isDirectory()) throw bad(`${dir} is not a directory`);
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw bad(`its folder ${dir} cannot be written (${errno(e)})`);
  }
}

/**
 * Writes `text` to `path` atomically and durably (temp file beside it, fsync, rename, fsync of the
 * folder; temps a killed writer left are removed). Throws UvirtioError
 * E_IO_ERROR (exit 3) with the errno when a step fails; `path` is then as it was.
 */
export function writeOutputFile(path: string, text: string): void {
  try {
    writeFileAtomically(path, text, { mode: 0o644, fsync: true });
  } catch (e) {
    throw new UvirtioError('E_IO_ERROR', `writing ${path}: ${errno(e)}`, `${path} is as it was; free space or choose another file`);
  }
}

// Shared helpers for the test-VM scripts: paths, the cache directory, content hashes, commands.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Everything built or downloaded lives here (git-ignored); UVIRTIO_VM_CACHE moves it. */
export const CACHE = process.env.UVIRTIO_VM_CACHE ?? path.join(PROJECT, '.cache', 'vm');

export function log(msg) {
  if (process.env.UVIRTIO_VM_QUIET !== '1') process.stderr.write(`[vm] ${msg}\n`);
}

/** Runs a command, throwing with its stderr when it fails; returns stdout. */
export function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${(r.stderr || r.stdout || '').toString().trim().slice(-2000)}`);
  }
  return r.stdout;
}

export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/** A short hash of strings and of files' contents (directories walked in sorted order). */
export function hashOf(...items) {
  const h = createHash('sha256');
  const add = (p) => {
    const st = fs.lstatSync(p);
    h.update(`${path.relative(PROJECT, p)}\0${st.mode}\0`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) add(path.join(p, e));
    else if (st.isSymbolicLink()) h.update(fs.readlinkSync(p));
    else h.update(fs.readFileSync(p));
  };
  for (const item of items) {
    if (typeof item === 'string' && fs.existsSync(item) && path.isAbsolute(item)) add(item);
    else h.update(`${JSON.stringify(item)}\0`);
  }
  return h.digest('hex').slice(0, 16);
}

/** Writes a file atomically (temp file + rename), so an interrupted build never leaves half a file. */
export function writeAtomic(file, writer) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writer(tmp);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Removes files in `dir` whose names start with `prefix`, except `keep`. */
export function pruneCache(dir, prefix, keep) {
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) {
    if (f.startsWith(prefix) && path.join(dir, f) !== keep) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  }
}

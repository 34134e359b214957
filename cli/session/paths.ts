// Where sessions live: a private runtime directory (0700) with, per session, a UNIX socket, and
// per device, a lock file naming the agent's pid (one agent per device).
//   $UVIRTIO_RUNTIME_DIR, else $XDG_RUNTIME_DIR/uvirtio, else /run/uvirtio (root), else /tmp/uvirtio-UID

import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../lib/errors.js';

export function runtimeDir(): string {
  const base = process.env.UVIRTIO_RUNTIME_DIR
    ?? (process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'uvirtio') : undefined)
    ?? (process.getuid?.() === 0 ? '/run/uvirtio' : `/tmp/uvirtio-${process.getuid?.() ?? 'user'}`);
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const st = statSync(base);
  if (process.getuid && st.uid !== process.getuid()) {
    throw new UsageError('E_INVALID_ARGUMENT', `${base} belongs to another user`, 'set UVIRTIO_RUNTIME_DIR to a private directory');
  }
  chmodSync(base, 0o700);
  return base;
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

export const socketPath = (dir: string, name: string): string => join(dir, `${name}.sock`);
const lockPath = (dir: string, device: string): string => join(dir, `device-${nameFor(device)}.lock`);

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the device's lock for this process; a lock whose agent is gone is stale and taken over. */
export function lockDevice(dir: string, device: string, session: string): void {
  const path = lockPath(dir, device);
  try {
    writeFileSync(path, JSON.stringify({ pid: process.pid, session }), { flag: 'wx', mode: 0o600 });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  let holder: { pid: number; session: string } | undefined;
  try {
    holder = JSON.parse(readFileSync(path, 'utf8')) as { pid: number; session: string };
  } catch {
    holder = undefined;
  }
  if (holder && pidAlive(holder.pid)) {
    throw new UsageError('E_SESSION_EXISTS', `${device} is already attached (session "${holder.session}", agent pid ${holder.pid})`,
      `use that session (--session ${holder.session}), or \`uvirtio detach --session ${holder.session}\` first`);
  }
  rmSync(path, { force: true });
  writeFileSync(path, JSON.stringify({ pid: process.pid, session }), { flag: 'wx', mode: 0o600 });
}

/** Removes the device's lock if `pid` holds it (never another agent's lock). */
export function unlockDevice(dir: string, device: string, pid: number): void {
  const path = lockPath(dir, device);
  try {
    if ((JSON.parse(readFileSync(path, 'utf8')) as { pid: number }).pid !== pid) return;
  } catch {
    return; // no lock, or not one of ours to judge
  }
  rmSync(path, { force: true });
}

/** Names of sessions whose socket exists. */
export function listSessions(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)).sort();
}

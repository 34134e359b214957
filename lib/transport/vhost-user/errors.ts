// The typed errors of the vhost-user front-end, one per way a back-end can fail us, each with a
// hint a person can act on. Every bound a wait had is named in its message.

import { DeviceError, TimeoutError } from '../../errors.js';
import { REQ_NAMES } from './protocol.js';

export function reqName(r: number): string {
  return `VHOST_USER_${REQ_NAMES[r] ?? `request ${r}`}`;
}

const START_DAEMON = (path: string): string =>
  `start the back-end first, e.g. qemu-storage-daemon --blockdev driver=file,node-name=f0,filename=IMG --export type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=${path},writable=on`;

/** Nothing listens on the socket path (ENOENT, ECONNREFUSED). */
export function unreachable(address: string, path: string, why: string, cause: unknown): DeviceError {
  return new DeviceError('E_VHOST_UNREACHABLE', `${address}: no vhost-user back-end is listening (${why})`, START_DAEMON(path), { cause });
}

export function notSocket(address: string, path: string, why: string, cause: unknown): DeviceError {
  return new DeviceError('E_VHOST_NOT_SOCKET', `${address}: ${path} is not a UNIX stream socket (${why})`,
    'vhost-user speaks over a SOCK_STREAM UNIX socket; check the path the back-end listens on', { cause });
}

/** The connection ended under us: the back-end closed it or its process died. */
export function lost(address: string, why: string): DeviceError {
  return new DeviceError('E_VHOST_LOST', `${address}: the vhost-user back-end ${why}`,
    'the back-end process exited or closed the connection; restart it and reopen the device (requests in flight were not completed)');
}

/** The back-end read what we sent but did not answer in time. */
export function timeout(address: string, what: string, ms: number): TimeoutError {
  return new TimeoutError('E_VHOST_TIMEOUT', `${address}: no answer to ${what} within ${ms} ms`,
    'the back-end is stuck or too busy; check it is alive, or raise the bound (vhost-user:PATH?timeout=MS, or the caller\'s timeout: --timeout)');
}

/** The back-end's process is stopped (SIGSTOP, a debugger): nothing it owns can answer. */
export function stalled(address: string, what: string, ms: number, pid: number): TimeoutError {
  return new TimeoutError('E_VHOST_TIMEOUT', `${address}: no answer to ${what} within ${ms} ms: the back-end process (pid ${pid}) is stopped`,
    `it was stopped (SIGSTOP, Ctrl-Z, or a debugger holds it): let it run again (kill -CONT ${pid}) and retry`);
}

/**
 * The back-end took our connection (or left it in its listen backlog) but never read from it:
 * it serves another front-end. qemu-storage-daemon serves one at a time (util/vhost-user-server.c
 * stops accepting while a client is connected and starts again once that client's session ended).
 */
export function busy(address: string, what: string, ms: number, connecting = false): DeviceError {
  const happened = connecting ? `accepted no connection within ${ms} ms (its listen backlog stayed full)` : `did not read ${what} within ${ms} ms`;
  return new DeviceError('E_VHOST_BUSY', `${address}: the back-end ${happened}: it is serving another front-end`,
    'qemu-storage-daemon serves one front-end at a time: another one (a uvirtio process or session agent, a VM) is connected, or its session is still ending; close that one first, or give each front-end its own daemon (--export … addr.path=OTHER.sock)');
}

/** The back-end broke the protocol: the connection cannot be trusted to be in step any more. */
export function protocol(address: string, message: string): DeviceError {
  return new DeviceError('E_VHOST_PROTOCOL', `${address}: ${message}`,
    'the back-end does not speak the vhost-user protocol as expected; check that the socket belongs to a vhost-user back-end of this device type');
}

/** A REPLY_ACK with a non-zero status (vhost-user.rst "REPLY_ACK"), or a GET_CONFIG answered with no bytes. */
export function refused(address: string, what: string, detail: string, hint = 'the back-end could not apply this setting; its log (stderr) usually says why'): DeviceError {
  return new DeviceError('E_VHOST_REFUSED', `${address}: the back-end refused ${what} (${detail})`, hint);
}

export function closed(address: string, what: string): DeviceError {
  return new DeviceError('E_CLOSED', `${address}: the vhost-user connection was closed ${what}`);
}

// The session protocol: one JSON request per line from the CLI, one JSON response per line from the
// agent. Errors travel as { code, message, hint } and are rebuilt as UvirtioErrors on the client.

import { connect } from 'node:net';
import { existsSync, rmSync } from 'node:fs';
import { UvirtioError, UsageError, type ErrorCode } from '../../lib/virtio/errors.js';
import { listSessions, runtimeDir, socketPath } from './paths.js';

export type Command = 'status' | 'stop' | 'vq-state' | 'snapshot' | 'reinit' | 'resume' | 'detach';
export interface Request {
  cmd: Command;
  args?: Record<string, unknown>;
}
export type Response = { ok: true; result: unknown } | { ok: false; error: { code: ErrorCode; message: string; hint?: string } };

/** Which session a command talks to: the named one, or the only one. */
export function resolveSession(name: string | undefined): string {
  const dir = runtimeDir();
  if (name) return name;
  const all = listSessions(dir);
  if (all.length === 1) return all[0]!;
  if (all.length === 0) throw new UsageError('E_NO_SESSION', 'no session is attached', 'start one with `uvirtio attach DEV`');
  throw new UsageError('E_SESSION_AMBIGUOUS', `${all.length} sessions are attached (${all.join(', ')})`, 'name one with --session NAME');
}

/** Sends one request and waits (bounded) for its response. A socket nobody listens on is removed. */
export function call(name: string, request: Request, timeoutMs = 120_000): Promise<unknown> {
  const path = socketPath(runtimeDir(), name);
  if (!existsSync(path)) {
    return Promise.reject(new UsageError('E_NO_SESSION', `no session "${name}"`, 'list them with `uvirtio status`, or `uvirtio attach DEV`'));
  }
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new UvirtioError('E_REQUEST_TIMEOUT', `session "${name}" did not answer "${request.cmd}" within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(JSON.stringify(request) + '\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const res = JSON.parse(buf.slice(0, nl)) as Response;
      if (res.ok) resolve(res.result);
      else reject(new UvirtioError(res.error.code, res.error.message, res.error.hint));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') {
        rmSync(path, { force: true }); // the agent is gone: a stale socket
        reject(new UsageError('E_NO_SESSION', `session "${name}" is gone (its agent exited); the stale socket was removed`, 'attach again'));
      } else {
        reject(new UvirtioError('E_NO_SESSION', `cannot reach session "${name}": ${e.message}`));
      }
    });
  });
}

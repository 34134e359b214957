// The session protocol: one JSON request per line from the CLI, one JSON response per line from the
// agent. Errors travel as { code, message, hint } and are rebuilt as UvirtioErrors on the client.
// Every call is bounded (its error names the session, the request and the bound) and ends at once
// at SIGINT/SIGTERM; the agent then finishes or skips the request on its own (agent.ts).

import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { UvirtioError, UsageError, type ErrorCode } from '../../lib/errors.js';
import { bounded } from '../wait.js';
import { checkName, listSessions, removeStaleSocket, runtimeDir, socketPath } from './paths.js';
import { InterruptedError } from '../signals.js';

export type Command = 'status' | 'stop' | 'vq-state' | 'snapshot' | 'reinit' | 'resume' | 'detach';
export interface Request {
  cmd: Command;
  args?: Record<string, unknown>;
}
export type Response = { ok: true; result: unknown } | { ok: false; error: { code: ErrorCode; message: string; hint?: string } };

/** The longest line either side sends: a reinit carries a whole snapshot (at most 32 MiB as a file). */
export const MAX_LINE_BYTES = 64 << 20;

/**
 * The first line a peer sends (a request or an answer: one JSON document, then '\n'), collected in
 * time linear in the bytes received — each chunk is searched once, and the line decoded as UTF-8
 * once, so a character split between chunks stays whole (a 32 MB snapshot searched anew at every
 * chunk took seconds). push() returns the line without its newline, null while it is incomplete,
 * or 'too-long' once more than `max` bytes came before a newline.
 */
export class FirstLine {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly max: number = MAX_LINE_BYTES) {}

  push(chunk: Buffer): string | null | 'too-long' {
    const nl = chunk.indexOf(0x0a);
    const taken = nl < 0 ? chunk : chunk.subarray(0, nl);
    this.bytes += taken.length;
    if (this.bytes > this.max) return 'too-long';
    this.chunks.push(taken);
    if (nl < 0) return null;
    const line = Buffer.concat(this.chunks, this.bytes).toString('utf8');
    this.chunks = [];
    return line;
  }
}

/** Which session a command talks to: the named one, or the only one. */
export function resolveSession(name: string | undefined): string {
  const dir = runtimeDir();
  if (name !== undefined) return checkName(name);
  const all = listSessions(dir);
  if (all.length === 1) return all[0]!;
  if (all.length === 0) throw new UsageError('E_NO_SESSION', 'no session is attached', 'start one with `uvirtio attach DEV`');
  throw new UsageError('E_SESSION_AMBIGUOUS', `${all.length} sessions are attached (${all.join(', ')})`, 'name one with --session NAME');
}

/** The one answer line on the socket, as a result or a rebuilt error. */
function answer(name: string, request: Request, sock: ReturnType<typeof connect>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const first = new FirstLine();
    let settled = false;
    const settle = (f: () => void): void => {
      if (!settled) {
        settled = true;
        f();
      }
    };
    sock.on('connect', () => sock.write(JSON.stringify(request) + '\n'));
    sock.on('data', (d: Buffer) => {
      if (settled) return;
      const line = first.push(d);
      if (line === 'too-long') {
        settle(() => reject(new UvirtioError('E_NO_SESSION', `session "${name}" answered more than ${MAX_LINE_BYTES} bytes to "${request.cmd}"`, 'that socket is not a uvirtio session agent')));
        return;
      }
      if (line === null) return;
      let res: Response;
      try {
        res = JSON.parse(line) as Response;
      } catch {
        settle(() => reject(new UvirtioError('E_NO_SESSION', `session "${name}" answered "${request.cmd}" with something that is not JSON`, 'that socket is not a uvirtio session agent')));
        return;
      }
      settle(() => (res.ok ? resolve(res.result) : reject(new UvirtioError(res.error.code, res.error.message, res.error.hint))));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => settle(() => {
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') {
        // The agent is gone; its socket is removed only if it is still the stale one (never a new
        // agent's that bound the name meanwhile).
        const removed = removeStaleSocket(runtimeDir(), name, true);
        reject(new UsageError('E_NO_SESSION', `session "${name}" is gone (its agent exited)${removed ? '; the stale socket was removed' : ''}`, 'attach again'));
      } else {
        reject(new UvirtioError('E_NO_SESSION', `cannot reach session "${name}": ${e.message}`, 'check `uvirtio status`'));
      }
    }));
    sock.on('close', () => settle(() => reject(new UvirtioError('E_NO_SESSION', `session "${name}" closed the connection without answering "${request.cmd}"`,
      `its agent exited; see ${socketPath(runtimeDir(), name).replace(/\.sock$/, '.log')}`))));
  });
}

/** Sends one request and waits (bounded by `ms`, ended by a signal) for its response. */
export async function call(name: string, request: Request, ms: number, signal?: AbortSignal | null): Promise<unknown> {
  const path = socketPath(runtimeDir(), checkName(name));
  if (!existsSync(path)) throw new UsageError('E_NO_SESSION', `no session "${name}"`, 'list them with `uvirtio status`, or `uvirtio attach DEV`');
  const sock = connect(path);
  try {
    return await bounded(answer(name, request, sock), {
      what: `session "${name}" answering "${request.cmd}"`, ms, hint: 'the agent is busy or stuck; `uvirtio status` shows it, `uvirtio detach` ends it',
    }, signal);
  } catch (e) {
    // Only this command stopped waiting: the agent runs a request it has begun to its own end.
    if (e instanceof InterruptedError && request.cmd !== 'status') {
      throw new InterruptedError(e.signal, undefined, `the session agent carries "${request.cmd}" on to its end (bounded by --timeout) if it had begun it, and drops it if it had not; \`uvirtio status --session ${name}\` shows what it is doing`);
    }
    throw e;
  } finally {
    sock.destroy();
  }
}

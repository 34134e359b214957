// Running the real `uvirtio` binary from tests: synchronously, or in the background to be signalled
// at a chosen moment, with the time from the signal to its exit measured.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';

export const bin = join(process.cwd(), 'bin', 'uvirtio.js');

export interface Outcome {
  /** The status a shell would report: the exit code, or 128 + the signal's number when killed by one. */
  status: number;
  stdout: string;
  stderr: string;
}

const shellStatus = (code: number | null, signal: NodeJS.Signals | null): number =>
  code ?? 128 + (signal ? constants.signals[signal] : 0);

/** Runs the binary to its end (bounded: a hang shows as status 128+9 after `timeoutMs`). */
export function uvSync(env: NodeJS.ProcessEnv, cwd: string, args: string[], timeoutMs = 60_000): Outcome & { json(): Record<string, unknown> } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', cwd, env: { ...process.env, ...env } });
  return { status: shellStatus(r.status, r.signal), stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

export class Background {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<Outcome>;
  private exitedAt = 0;

  constructor(env: NodeJS.ProcessEnv, cwd: string, args: string[]) {
    this.child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => {
      this.exitedAt = performance.now();
      resolve({ status: shellStatus(code, signal), stdout: this.stdout, stderr: this.stderr });
    }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` (if still running) and waits for the exit, bounded; `ms` is from the signal to the exit. */
  async signal(signal: NodeJS.Signals, boundMs = 30_000): Promise<Outcome & { ms: number; sent: boolean }> {
    const sentAt = performance.now();
    const sent = this.running && this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), boundMs);
    const out = await this.exited;
    clearTimeout(timer);
    return { ...out, ms: this.exitedAt - sentAt, sent };
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `check()` holds, looking every 20 ms; false when `ms` passed first. */
export async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

export function summary(ms: number[]): { n: number; min: number; median: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const r = (x: number): number => Math.round(x);
  return { n: s.length, min: r(s[0] ?? 0), median: r(s[Math.floor((s.length - 1) / 2)] ?? 0), max: r(s.at(-1) ?? 0) };
}

/**
 * A runner of `uvirtio ARGS` to its end, with UVIRTIO_RUNTIME_DIR set to `runtime` (a session test's
 * private directory), in `cwd` (default: this process's). `status` is the exit code, null when a
 * signal or the `timeoutMs` bound (SIGKILL) ended it.
 */
export function uvInRuntime(runtime: string, cwd?: string, timeoutMs = 30_000): (...args: string[]) => { status: number | null; stdout: string; stderr: string } {
  return (...args) => {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', ...(cwd === undefined ? {} : { cwd }), env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}

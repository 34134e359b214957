// Keeps `inflight` requests of a workload outstanding until a budget is spent (or stop() is
// called), optionally pacing each slot so a background session does not spin a core.
//
// Its waits (completedAtLeast, idle) are bounded by progress: one that sees no request complete
// for `stallMs` rejects with E_DEVICE_UNRESPONSIVE, and one whose signal aborts (SIGINT) rejects
// with the signal's reason. A stalled device therefore never holds a rehearsal or a session.

import { TimeoutError } from '../../lib/errors.js';
import type { Workload } from './workload.js';

export interface TrafficOptions {
  inflight: number;
  /** Requests to issue in all (default: no limit). */
  budget?: number;
  /** Delay before a slot issues its next request (default 0: at once). */
  paceMs?: number;
}

export interface TrafficWait {
  /** The wait fails once no request has completed for this long. */
  stallMs: number;
  signal?: AbortSignal | null;
}

export class Traffic {
  outstanding = 0;
  issued = 0;
  readonly errors: unknown[] = [];
  private budget: number;
  /** When a request last completed (or the traffic started). */
  private lastProgress = Date.now();
  private readonly wakers = new Set<() => void>();

  constructor(private readonly work: Workload, private readonly o: TrafficOptions) {
    this.budget = o.budget ?? Infinity;
  }

  start(): void {
    this.lastProgress = Date.now();
    this.fill();
  }

  /** Issues nothing more; what is outstanding goes on. */
  stop(): void {
    this.budget = this.issued;
    for (const wake of this.wakers) wake();
  }

  /** Resolves once the workload has completed at least `n` requests, or traffic has ended or failed. */
  completedAtLeast(n: number, wait: TrafficWait): Promise<void> {
    return this.until(() => this.work.completed >= n || this.ended || this.errors.length > 0, `waiting for ${n} completed requests`, wait);
  }

  /** Resolves when nothing is outstanding. */
  idle(wait: TrafficWait): Promise<void> {
    return this.until(() => this.outstanding === 0, `waiting for ${this.outstanding} requests in flight to complete`, wait);
  }

  private get ended(): boolean {
    return this.issued >= this.budget && this.outstanding === 0;
  }

  private until(done: () => boolean, what: string, { stallMs, signal }: TrafficWait): Promise<void> {
    if (done()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout;
      const finish = (error?: unknown): void => {
        clearTimeout(timer);
        this.wakers.delete(check);
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error as Error);
      };
      const check = (): void => {
        if (done()) finish();
      };
      const onAbort = (): void => finish(signal!.reason);
      // Re-armed at each look: the bound is on the time since the last completion, not on the total.
      const watch = (): void => {
        const quiet = Date.now() - this.lastProgress;
        if (quiet < stallMs) {
          timer = setTimeout(watch, stallMs - quiet);
          return;
        }
        finish(new TimeoutError('E_DEVICE_UNRESPONSIVE', `${what}: no request completed for ${stallMs} ms (${this.outstanding} in flight)`,
          'the device stopped answering: check it (or its back-end), or raise --timeout'));
      };
      this.wakers.add(check);
      signal?.addEventListener('abort', onAbort, { once: true });
      watch();
    });
  }

  private fill(): void {
    while (this.outstanding < this.o.inflight && this.issued < this.budget) this.issueOne();
  }

  private issueOne(): void {
    this.outstanding++;
    this.issued++;
    this.work.issue().catch((e: unknown) => this.errors.push(e)).finally(() => {
      this.outstanding--;
      this.lastProgress = Date.now();
      for (const wake of this.wakers) wake();
      if (this.issued >= this.budget || this.errors.length > 0) return;
      if (this.o.paceMs) setTimeout(() => this.fill(), this.o.paceMs);
      else this.fill();
    });
  }
}

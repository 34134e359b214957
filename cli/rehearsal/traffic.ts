// Keeps `inflight` requests of a workload outstanding until a budget is spent (or stop() is
// called), optionally pacing each slot so a background session does not spin a core.

import type { Workload } from './workload.js';

export interface TrafficOptions {
  inflight: number;
  /** Requests to issue in all (default: no limit). */
  budget?: number;
  /** Delay before a slot issues its next request (default 0: at once). */
  paceMs?: number;
}

export class Traffic {
  outstanding = 0;
  issued = 0;
  readonly errors: unknown[] = [];
  private budget: number;
  private readonly waiters: { completed: number; resolve: () => void }[] = [];

  constructor(private readonly work: Workload, private readonly o: TrafficOptions) {
    this.budget = o.budget ?? Infinity;
  }

  start(): void {
    while (this.outstanding < this.o.inflight && this.issued < this.budget) this.issueOne();
  }

  /** Issues nothing more; what is outstanding goes on. */
  stop(): void {
    this.budget = this.issued;
  }

  /** Resolves once the workload has completed at least `n` requests (or traffic has ended). */
  completedAtLeast(n: number): Promise<void> {
    if (this.work.completed >= n || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ completed: n, resolve }));
  }

  /** Resolves when nothing is outstanding. */
  async idle(): Promise<void> {
    while (this.outstanding > 0) await new Promise((r) => setTimeout(r, 1));
  }

  private get ended(): boolean {
    return this.issued >= this.budget && this.outstanding === 0;
  }

  private issueOne(): void {
    this.outstanding++;
    this.issued++;
    this.work.issue().catch((e: unknown) => this.errors.push(e)).finally(() => {
      this.outstanding--;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.work.completed >= this.waiters[i]!.completed || this.ended || this.errors.length > 0) this.waiters.splice(i, 1)[0]!.resolve();
      }
      if (this.issued >= this.budget) return;
      if (this.o.paceMs) setTimeout(() => this.start(), this.o.paceMs);
      else this.start();
    });
  }
}

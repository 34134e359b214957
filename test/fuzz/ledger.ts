// The fuzzer's book of requests: every promise a run issued, how it settled, and how long the
// requests pending at each device failure took to settle. Check failures raised inside the
// callbacks are kept and re-thrown at the end of the run (a callback must not throw into the SDK).

import type { VirtioDevice } from '../../lib/virtio/device.js';

/** A property the run broke; the message says which and how. */
export class FuzzFailure extends Error {}

interface Handlers {
  resolved?: (value: unknown) => void;
  rejected?: (e: unknown) => void;
  settled?: () => void;
}

/** Bound on the wait for every request to settle once the device is quiet or closed. */
const SETTLE_BOUND_MS = 3000;

export class Ledger {
  issued = 0;
  resolved = 0;
  rejected = 0;
  /** Longest time from a device failure to the last request pending at it settling (ms). */
  worstSettleMs = 0;
  /** Longest any request stayed pending, issue to settle (ms): bounds fault → settle for silent devices too. */
  longestPendingMs = 0;
  /** Request rejections by code. */
  readonly codes = new Map<string, number>();
  /** Operations (stop, snapshot, reinit, resume, recover) that failed, by code. */
  readonly operationCodes = new Map<string, number>();
  /** Timeouts of the short bounds that no injected fault explains (a busy machine; run.ts expectCode). */
  shortBoundTimeouts = 0;
  private readonly pending = new Map<number, string>();
  private nextId = 0;
  private failure: unknown = null;
  private readonly waits: { ids: Set<number>; since: number }[] = [];

  /** Records each failure of `device` and measures how long the requests pending then take to settle. */
  watch(device: VirtioDevice): void {
    device.onFailure(() => {
      if (this.pending.size > 0) this.waits.push({ ids: new Set(this.pending.keys()), since: performance.now() });
    });
  }

  track(what: string, p: Promise<unknown>, h: Handlers): void {
    const id = this.nextId++;
    this.issued++;
    this.pending.set(id, what);
    let settledOnce = false;
    const issuedAt = performance.now();
    const settle = (): void => {
      if (settledOnce) this.fail(new FuzzFailure(`${what} settled twice`));
      settledOnce = true;
      this.longestPendingMs = Math.max(this.longestPendingMs, performance.now() - issuedAt);
      this.pending.delete(id);
      for (let i = this.waits.length - 1; i >= 0; i--) {
        const w = this.waits[i]!;
        w.ids.delete(id);
        if (w.ids.size === 0) {
          this.worstSettleMs = Math.max(this.worstSettleMs, performance.now() - w.since);
          this.waits.splice(i, 1);
        }
      }
      this.guard(() => h.settled?.());
    };
    p.then((v) => {
      this.resolved++;
      settle();
      this.guard(() => h.resolved?.(v));
    }, (e: unknown) => {
      this.rejected++;
      const code = (e as { code?: string })?.code ?? 'foreign';
      this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
      settle();
      this.guard(() => h.rejected?.(e));
    });
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.fail(e);
    }
  }

  fail(e: unknown): void {
    this.failure ??= e;
  }

  /** Throws the first check that failed inside a callback. */
  rethrow(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits (bounded) until nothing is pending. */
  async allSettled(): Promise<void> {
    const deadline = performance.now() + SETTLE_BOUND_MS;
    while (this.pending.size > 0) {
      if (performance.now() > deadline) {
        throw new FuzzFailure(`${this.pending.size} request(s) never settled within ${SETTLE_BOUND_MS} ms: ${[...this.pending.values()].slice(0, 5).join(', ')}`);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    this.rethrow();
  }
}

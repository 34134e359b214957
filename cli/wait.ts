// Every wait in cli/ is bounded() or a Traffic wait: it ends when the awaited thing settles, when
// its bound passes (a TimeoutError naming what was awaited and the bound), or at the first
// SIGINT/SIGTERM (the InterruptedError of signals.ts). The awaited operation is not cancelled — the
// caller tears it down (closes the device) — but nobody waits for it any more.

import { TimeoutError, type ErrorCode } from '../lib/errors.js';
import { interruption } from './signals.js';

/** The bounds of cli/, by name. Device waits use --timeout (default DEVICE_MS). */
export const BOUNDS = {
  /** Default --timeout: a stop, traffic making no progress, a drain, a verification, a reinit. */
  DEVICE_MS: 10_000,
  /** A session agent's start: open the device, set up the driver, listen (attach). */
  AGENT_START_MS: 20_000,
  /**
   * A wait on something that has a bound of its own (an SDK call, a session agent) gets this much
   * more, so that the inner error — the one that names the device step — is the one reported.
   */
  MARGIN_MS: 5_000,
  /** `status`: an agent answers it at once, from memory. */
  STATUS_MS: 5_000,
  /** Closing a device during a teardown (its reset is itself bounded by 1000 ms). */
  CLOSE_MS: 1_200,
  /** After a signal: how long a device step still in flight may take before the device is closed. */
  SETTLE_MS: 800,
  /** A stopped agent's exit, before it is killed (attach interrupted or failed). */
  AGENT_EXIT_MS: 800,
} as const;

export interface Bound {
  /** What is awaited, for the error: "the stop of sim:blk". */
  what: string;
  ms: number;
  /** Default E_REQUEST_TIMEOUT. */
  code?: ErrorCode;
  hint?: string;
}

/** `p`, or a TimeoutError after `bound.ms`, or the signal's reason once it aborts. */
export function bounded<T>(p: Promise<T>, bound: Bound, signal: AbortSignal | null = interruption()): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      reject(new TimeoutError(bound.code ?? 'E_REQUEST_TIMEOUT', `${bound.what} did not end within ${bound.ms} ms`,
        bound.hint ?? 'the device (or agent) is not answering; check it, or raise --timeout'));
    }, bound.ms);
    const onAbort = (): void => {
      done();
      reject(signal!.reason as Error);
    };
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then((v) => {
      done();
      resolve(v);
    }, (e: unknown) => {
      done();
      reject(e as Error);
    });
  });
}

/**
 * `bounded(p, bound, signal)` for a wait that acquires something (an open, a driver set-up): when
 * the wait ends first (its bound, a signal), nobody holds what `p` brings once it completes, so it
 * is released then with `release` (its failure ignored). An open abandoned at its bound is closed
 * when (if) it completes, instead of holding the device (a vhost-user back-end serves one front-end).
 */
export function boundedAcquire<T>(p: Promise<T>, bound: Bound, release: (v: T) => unknown, signal: AbortSignal | null = interruption()): Promise<T> {
  return bounded(p, bound, signal).catch((e: unknown) => {
    releaseWhenDone(p, release);
    throw e;
  });
}

/** Releases what `p` brings once it completes (nothing if it rejects): for an acquisition nobody waits for any more. */
export function releaseWhenDone<T>(p: Promise<T>, release: (v: T) => unknown): void {
  p.then((v) => Promise.resolve().then(() => release(v)), () => undefined).catch(() => undefined);
}

/** Resolves after `ms`; rejects at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | null = interruption()): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `close` once `running` — a device step abandoned at a signal — has settled, waiting for it
 * at most `ms`; past that, the close runs in the background when it settles. Never under it: the
 * step may still touch the device's memory, and a vhost-user arena is mmap'd, so touching it after
 * the close would crash the process. (A process that exits first loses nothing: exiting releases
 * the device, and no JavaScript runs after.) True when closed now.
 */
export async function closeWhenSettled(running: Promise<unknown> | null, close: () => Promise<void>, ms: number): Promise<boolean> {
  const settled = running === null || await Promise.race([running.then(() => true, () => true), sleep(ms, null).then(() => false)]);
  if (!settled) {
    running!.then(close, close).catch(() => undefined);
    return false;
  }
  await bounded(close(), { what: 'closing the device (reset)', ms: BOUNDS.CLOSE_MS }, null).catch(() => undefined);
  return true;
}

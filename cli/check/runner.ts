// Runs the checks of ./all.ts against one opened device: n/a where a check's needs are not met,
// each run bounded (its bound named when it trips), everything a check opened closed after it, and
// a reset (bounded) between checks so that no check inherits another's device state. A device
// that stops reading 0 after a reset makes the rest n/a (they could not start from a known state).

import type { OpenedTransport } from '../../lib/open.js';
import { UsageError, isUvirtioError } from '../../lib/errors.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import type { VirtioTransport } from '../../lib/transport/types.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { deviceTypeName, featureNames, hasFeature } from '../../lib/spec/index.js';
import { BOUNDS, bounded } from '../wait.js';
import { interruption, throwIfInterrupted } from '../signals.js';
import type { Check, CheckContext, Level, Outcome, Verdict } from './types.js';
import { thrownMessage } from '../../lib/util/shown.js';

/** One line of the report. */
export interface CheckResult {
  /** The check's stable id (Check.id). */
  id: string;
  /** The spec section (Check.section). */
  section: string;
  /** The requirement in words (Check.clause). */
  clause: string;
  /** MUST or SHOULD. */
  level: Level;
  /** pass, fail (a MUST), warn (a SHOULD, or a doubtful pass), n/a. */
  result: Outcome;
  /** Why: counts, the error code and message, or the n/a reason. */
  detail: string;
  /** How long the run took, ms. */
  ms: number;
}

/** What `uvirtio check` reports (the --json document). */
export interface CheckReport {
  /** The device address as opened. */
  address: string;
  /** Device type name ("blk"). */
  type: string;
  /** Device type id (virtio 1.2 §5). */
  deviceType: number;
  /** Offered features, hex. */
  offered: string;
  results: CheckResult[];
  /** Counts by outcome. */
  summary: Record<Outcome, number>;
  /** Whether no MUST failed (the exit status is 0). */
  ok: boolean;
  /** The whole run, ms. */
  ms: number;
}

/** How runChecks runs. */
export interface RunOptions {
  /** Bound on each check's run, ms (a check may name a smaller one). */
  timeoutMs: number;
  /** The one blk sector writes may touch; null: none. */
  scratchSector: number | null;
  /** Only these checks, or groups (an id prefix before a dot); default all. */
  only?: readonly string[];
  /** Test seams (test/sim/check-*.test.ts injects the reference device's faults through them). */
  hooks?: {
    /** Before check `id` runs (after the previous check's reset). */
    before?(id: string): void;
    /** When check `id` has its device live (CheckContext.live). */
    live?(id: string): void;
    /** After check `id` and its closes, before the reset. */
    after?(id: string): void;
  };
}

/**
 * `t` lent to one check: a close() that does nothing (VirtioDevice.close(), and so every driver's,
 * releases its transport, and the suite needs the one it opened for the next check), and every
 * other call refused with E_CLOSED once `ended()` (the check's run outlived its bound: what it
 * still does must not reach the device under the next check). Everything else is `t`'s own.
 */
function lend(t: VirtioTransport, id: string, ended: () => boolean): VirtioTransport {
  return new Proxy(t, {
    get(target, prop) {
      if (prop === 'close') return () => undefined;
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      return (...a: unknown[]) => {
        if (ended()) throw new UsageError('E_CLOSED', `check ${id} has ended: its transport takes no more calls`);
        return (v as (...a: unknown[]) => unknown).apply(target, a);
      };
    },
  });
}

/** Why a check does not apply to this device, or null when it does. */
function unmet(check: Check, ctx: { t: { deviceType: number }; pci: unknown; offered: bigint }): string | null {
  const n = check.needs;
  if (!n) return null;
  if (n.types && !n.types.includes(ctx.t.deviceType)) {
    return `a ${n.types.map(deviceTypeName).join(' / ')} check; the device is ${deviceTypeName(ctx.t.deviceType)}`;
  }
  if (n.pci && !ctx.pci) return 'a virtio-pci (§4.1) check; the transport is not virtio-pci';
  const missing = (n.features ?? []).filter((f) => !hasFeature(ctx.offered, f));
  if (missing.length) return `the device does not offer ${missing.map((f) => featureNames(1n << BigInt(f), ctx.t.deviceType)).join(', ')}`;
  return null;
}

function describe(e: unknown): string {
  if (isUvirtioError(e)) return `${e.code}: ${e.message}`;
  return thrownMessage(e);
}

/** What runOne needs besides the check: the device, the user's options, the group's shared results. */
interface Env {
  t: VirtioTransport;
  pci: VirtioPciTransport | null;
  offered: bigint;
  o: RunOptions;
  memo: Map<string, Promise<unknown>>;
}

/**
 * Runs one check, bounded, then closes what it opened, frees its memory and resets the device.
 * Returns its verdict and whether the reset failed (the rest is then n/a). Rethrows an interruption.
 */
async function runOne(check: Check, env: Env): Promise<{ verdict: Verdict; resetFailed: string | null }> {
  const { t, o, memo } = env;
  let settled = false;
  let timedOut = false;
  let ended = false; // set once the run is over (or outlived its bound) and what it opened is closed
  const lent = lend(t, check.id, () => ended);
  const closers: (() => Promise<unknown> | unknown)[] = [];
  const regions: DmaRegion[] = [];
  const timeoutMs = Math.min(check.timeoutMs ?? o.timeoutMs, o.timeoutMs);
  const ctx: CheckContext = {
    t: lent, pci: env.pci, offered: env.offered, scratchSector: o.scratchSector, timeoutMs,
    open: async (options = {}) => {
      if (timedOut) throw new UsageError('E_CLOSED', `check ${check.id} has ended: it opens no more devices`);
      const d = await VirtioDevice.open(lent, { resetTimeoutMs: Math.min(1000, timeoutMs), requestTimeoutMs: timeoutMs, ...options });
      closers.push(() => d.close());
      return d;
    },
    defer: (close) => void closers.push(close),
    alloc: (size) => {
      if (ended) throw new UsageError('E_CLOSED', `check ${check.id} has ended: it allocates no more DMA memory`);
      const r = t.dma.alloc(size);
      regions.push(r);
      return r;
    },
    live: async () => {
      o.hooks?.live?.(check.id);
      await new Promise((r) => setImmediate(r));
    },
    memo: <T>(key: string, make: () => Promise<T>): Promise<T> => {
      if (!memo.has(key)) memo.set(key, make());
      return memo.get(key) as Promise<T>;
    },
  };
  let verdict: Verdict;
  try {
    o.hooks?.before?.(check.id);
    verdict = await bounded(check.run(ctx).finally(() => void (settled = true)), {
      what: `check ${check.id}`, ms: timeoutMs, hint: 'the device did not finish the check in time; raise --check-timeout',
    });
  } catch (e) {
    if (interruption().aborted) throw e; // the signal, not the device: the command ends (its finally resets the device)
    verdict = { result: 'fail', detail: describe(e) };
    // The run goes on in the background: it opens nothing more, and its shared results (a traffic
    // run cut short) are not handed to the group's next check, which runs its own within its bound.
    timedOut = !settled;
    if (timedOut) memo.clear();
  }
  for (const close of closers.reverse()) {
    await bounded(Promise.resolve().then(close), { what: `closing after ${check.id}`, ms: BOUNDS.CLOSE_MS }, null).catch(() => undefined);
  }
  ended = true;
  o.hooks?.after?.(check.id);
  try {
    await t.reset(1000);
    for (const r of regions) {
      try {
        t.dma.free(r);
      } catch (e) {
        // A queue of a device the check opened and whose close outlived its bound still holds it
        // (E_DMA_IN_USE): left allocated, the transport's close releases it — not a failed reset.
        if (!isUvirtioError(e) || e.code !== 'E_DMA_IN_USE') throw e;
      }
    }
    return { verdict, resetFailed: null };
  } catch (e) {
    return { verdict, resetFailed: describe(e) };
  }
}

/**
 * A reset between checks that never completed is the device failing status.reset-reads-zero's
 * clause (virtio 1.2 §2.4.1), whether or not that check ran or passed earlier: its result becomes
 * (or is added as) a failure naming the check after which the reset hung, so the run fails.
 */
function resetNeverCompleted(results: CheckResult[], checks: readonly Check[], after: string, why: string): void {
  const id = 'status.reset-reads-zero';
  const detail = `after ${after} the device did not complete a reset (${why})`;
  const own = results.find((r) => r.id === id);
  if (own) {
    if (own.id === after && own.result === 'fail') return; // its own verdict says so already
    Object.assign(own, { result: 'fail', detail: own.result === 'fail' ? `${own.detail}; ${detail}` : detail });
    return;
  }
  const c = checks.find((k) => k.id === id);
  results.push(c ? { id, section: c.section, clause: c.clause, level: c.level, result: 'fail', detail, ms: 0 }
    : { id, section: '2.4.1', clause: 'after 0 is written to device_status the device resets and device_status reads 0', level: 'MUST', result: 'fail', detail, ms: 0 });
}

/** Runs `checks` in order against `dev` (left open: the caller closes it). Never throws for what the device does. */
export async function runChecks(dev: OpenedTransport, checks: readonly Check[], o: RunOptions): Promise<CheckReport> {
  const started = performance.now();
  const t = dev.transport;
  const env: Env = { t, pci: t instanceof VirtioPciTransport ? t : null, offered: t.deviceFeatures(), o, memo: new Map() };
  const results: CheckResult[] = [];
  let blocked: string | null = null;
  let group = '';
  for (const check of checks) {
    throwIfInterrupted(); // SIGINT / SIGTERM: no further check starts
    if (o.only && !o.only.some((p) => check.id === p || check.id.startsWith(`${p}.`))) continue;
    const base = { id: check.id, section: check.section, clause: check.clause, level: check.level };
    const g = check.id.slice(0, check.id.lastIndexOf('.'));
    if (g !== group) env.memo = new Map(); // a group's checks share results (a traffic run), no one else
    group = g;
    const reason = blocked ?? unmet(check, env);
    if (reason) {
      results.push({ ...base, result: 'n/a', detail: reason, ms: 0 });
      continue;
    }
    const t0 = performance.now();
    const { verdict, resetFailed } = await runOne(check, env);
    const result = verdict.result === 'fail' && check.level === 'SHOULD' ? 'warn' : verdict.result;
    results.push({ ...base, result, detail: verdict.detail, ms: Math.round((performance.now() - t0) * 10) / 10 });
    if (resetFailed) {
      blocked = `not run: the device did not complete a reset after ${check.id} (${resetFailed})`;
      resetNeverCompleted(results, checks, check.id, resetFailed);
    }
  }
  const summary: Record<Outcome, number> = { pass: 0, fail: 0, warn: 0, 'n/a': 0 };
  for (const r of results) summary[r.result]++;
  return {
    address: dev.address, type: deviceTypeName(t.deviceType), deviceType: t.deviceType, offered: `0x${env.offered.toString(16)}`,
    results, summary, ok: summary.fail === 0, ms: Math.round(performance.now() - started),
  };
}

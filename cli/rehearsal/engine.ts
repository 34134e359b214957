// A migration rehearsal: traffic with requests in flight → stop at a seeded random point →
// snapshot written to a file and read back (validated) → reinit on the same device or on `--to`
// (alternating each cycle, as a ping-pong migration) → traffic goes on; at the end every request
// is checked for having been done exactly once with the right data.

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport, type OpenedDevice } from '../../lib/open.js';
import { deviceTypeName } from '../../lib/spec/index.js';
import { UsageError, UvirtioError } from '../../lib/errors.js';
import { shown } from '../../lib/util/shown.js';
import { readSnapshotFile, removeStaleSnapshotTemps, writeSnapshotFile, type DeviceSnapshot, type Mechanism } from '../../lib/virtio/snapshot/index.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { BlkWorkload } from './blk.js';
import { NetWorkload } from './net.js';
import { randomInt, seededRandom } from './random.js';
import { Traffic } from './traffic.js';
import { workloadKindFor, type Verdict, type Workload, type WorkloadKind } from './workload.js';
import { BOUNDS, bounded, closeWhenSettled, releaseWhenDone } from '../wait.js';
import { pidAlive } from '../session/paths.js';

export interface RehearsalOptions {
  device: string;
  to?: string;
  workload?: WorkloadKind;
  cycles: number;
  /** Requests kept in flight. */
  inflight: number;
  mechanism: Mechanism | 'auto';
  layout: Layout | 'auto';
  seed: number;
  /** Requests issued per cycle before the stop point is drawn (default 200). */
  requestsPerCycle?: number;
  /** Where snapshot files go (default: a temp dir, removed at the end unless keepSnapshots). */
  snapshotDir?: string;
  keepSnapshots?: boolean;
  /**
   * Bound on each wait for the device (default 10000 ms): a stop, a reinit, traffic that makes no
   * progress, the verification.
   */
  timeoutMs?: number;
  /** Called once the driver is set up, before the traffic starts. */
  onStart?: (s: { device: string; target: string; workload: WorkloadKind; layout: Layout }) => void;
  onCycle?: (c: CycleReport) => void;
  /**
   * Aborting it (SIGINT) ends the rehearsal at once: whatever it waits for is abandoned, the
   * devices are closed (reset), and it rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

export interface CycleReport {
  cycle: number;
  from: string;
  to: string;
  mechanism: Mechanism;
  /** Requests the rehearsal had outstanding at the stop (in the rings, or waiting to get in). */
  inFlightAtStop: number;
  /** Chains in the rings at the stop (the snapshot's inFlight): what the stop and reinit really carried. */
  inRingAtStop: number;
  snapshotFile: string;
  pauseMs: number;
}

export interface RehearsalReport {
  ok: boolean;
  device: string;
  target: string;
  workload: WorkloadKind;
  mechanism: Mechanism | null;
  layout: Layout;
  cycles: number;
  seed: number;
  requests: { submitted: number; completed: number } & Verdict;
  pause_ms: { median: number; p99: number; max: number };
  cycle_reports: CycleReport[];
  /** Device-side executions counted by the reference device (sim only), to prove nothing ran twice. */
  device_executions?: number;
  /**
   * A migration target refused the reinit (then `ok` is false): the source took the rings back,
   * the rehearsal stopped cycling there, and the verdict still covers every request.
   */
  refused?: { cycle: number; target: string; error: { code: string; message: string; hint?: string } };
  /** With `refused`: the refusal, in the shape every failing command reports (`{ ok: false, error }`). */
  error?: { code: string; message: string; hint?: string };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const round = (n: number): number => Math.round(n * 1000) / 1000;

export async function openWorkload(kind: WorkloadKind, dev: OpenedDevice, layout: Layout | 'auto', rng: () => number): Promise<Workload> {
  const chosen = layout === 'auto' ? dev.layout ?? 'auto' : layout;
  if (kind === 'blk') return new BlkWorkload(await BlkDriver.open(dev.transport, { layout: chosen, depth: 64 }), rng);
  return new NetWorkload(await NetDriver.open(dev.transport, { layout: chosen }), rng);
}

/** Sum of blk requests the reference device carried out, over every device used. */
function simExecutions(kind: WorkloadKind, devices: OpenedDevice[]): number | undefined {
  if (kind !== 'blk' || !devices.every((d) => d.sim)) return undefined;
  return devices.reduce((n, d) => n + d.sim!.stats.completed.reduce((a, b) => a + b, 0), 0);
}

/** Refuses what cannot work before any device is touched beyond opening it. */
function checkOptions(o: RehearsalOptions): void {
  if (typeof o !== 'object' || o === null) throw new UsageError('E_INVALID_ARGUMENT', `rehearse options must be an object { device, cycles, inflight, … }, got ${shown(o)}`);
  if (!Number.isInteger(o.cycles) || o.cycles < 1) throw new UsageError('E_INVALID_ARGUMENT', `cycles must be a positive integer, got ${shown(o.cycles)}`);
  if (!Number.isInteger(o.inflight) || o.inflight < 1 || o.inflight > 4096) throw new UsageError('E_INVALID_ARGUMENT', `inflight must be 1 to 4096, got ${shown(o.inflight)}`);
  if (o.snapshotDir !== undefined) {
    let isDir = false;
    try {
      isDir = statSync(o.snapshotDir).isDirectory();
    } catch {
      throw new UsageError('E_INVALID_ARGUMENT', `--snapshot-dir ${o.snapshotDir} does not exist`, `create it first (mkdir -p ${o.snapshotDir})`);
    }
    if (!isDir) throw new UsageError('E_INVALID_ARGUMENT', `--snapshot-dir ${o.snapshotDir} is not a directory`, 'name a directory to keep the snapshot files in');
  }
}

/** The workload kind for the devices opened: both of one type, with a workload for it. */
function kindFor(o: RehearsalOptions, source: OpenedDevice, target: OpenedDevice | undefined): WorkloadKind {
  const kind = workloadKindFor(source.transport.deviceType, source.address);
  if (target && target.transport.deviceType !== source.transport.deviceType) {
    throw new UsageError('E_INVALID_ARGUMENT', `--to ${target.address} is a ${deviceTypeName(target.transport.deviceType)} device; ${source.address} is ${kind}`,
      'migrate between two devices of the same type');
  }
  if (o.workload && o.workload !== kind) {
    throw new UsageError('E_INVALID_ARGUMENT', `--workload ${o.workload} does not fit ${source.address}, a ${kind} device`, `leave --workload out, or pass --workload ${kind}`);
  }
  return kind;
}

export async function rehearse(o: RehearsalOptions): Promise<RehearsalReport> {
  checkOptions(o);
  const signal = o.signal ?? null;
  const timeoutMs = o.timeoutMs ?? BOUNDS.DEVICE_MS;
  const rng = seededRandom(o.seed);
  const devices: OpenedDevice[] = [];
  let work: Workload | undefined;
  let dir: string | undefined;
  const steps = new DeviceSteps(timeoutMs, signal);
  let failure: unknown;
  try {
    // The open's own waits (vhost-user's handshake) end within --timeout, with the device's error;
    // an open the step abandons is closed when it completes.
    const source = await steps.run(openTransport(o.device, { timeoutMs }), `opening ${o.device}`, (late) => late.transport.close());
    devices.push(source);
    const target = o.to ? await steps.run(openTransport(o.to, { shareWith: source, timeoutMs }), `opening ${o.to}`, (late) => late.transport.close()) : undefined;
    if (target) devices.push(target);
    const kind = kindFor(o, source, target);
    throwIfAborted(signal);
    dir = o.snapshotDir ?? temporaryDir();
    removeKilledWrites(dir);
    work = await steps.run(openWorkload(kind, source, o.layout, rng), `setting up the ${kind} driver on ${source.address}`, (late) => late.close());
    o.onStart?.({ device: source.address, target: target?.address ?? source.address, workload: kind, layout: work.driving().layout });
    const run = await runCycles(o, work, source, target, dir, { timeoutMs, signal, rng, steps });
    // The reference device counts what it carried out; more than the driver completed is a duplicate.
    const executions = simExecutions(kind, devices);
    if (executions !== undefined) run.verdict.duplicated += Math.max(0, executions - work.completed - work.verifyRequests);
    const pauses = run.reports.map((r) => r.pauseMs).sort((a, b) => a - b);
    const v = run.verdict;
    return {
      ok: v.lost === 0 && v.duplicated === 0 && v.corrupted === 0 && work.completed === work.submitted && !run.refused,
      device: source.address,
      target: target?.address ?? source.address,
      workload: kind,
      mechanism: run.reports[0]?.mechanism ?? null,
      layout: work.driving().layout,
      cycles: run.reports.length,
      seed: o.seed,
      requests: { submitted: work.submitted, completed: work.completed, ...v },
      pause_ms: { median: round(percentile(pauses, 50)), p99: round(percentile(pauses, 99)), max: round(pauses.at(-1) ?? 0) },
      cycle_reports: run.reports,
      ...(executions !== undefined ? { device_executions: executions } : {}),
      ...(run.refused ? { refused: run.refused, error: run.refused.error } : {}),
    };
  } catch (e) {
    failure = e;
    throw e;
  } finally {
    // Also after SIGINT: closing resets each device (bounded) — once a step abandoned at the signal
    // has settled. What is still pending is rejected with the rehearsal's error.
    const opened = work;
    const reason = failure instanceof UvirtioError ? failure : undefined;
    await closeWhenSettled(steps.running, async () => {
      await opened?.close(reason).catch(() => undefined);
      for (const d of devices) d.transport.close();
    }, BOUNDS.SETTLE_MS);
    if (dir && !o.snapshotDir && !o.keepSnapshots) rmSync(dir, { recursive: true, force: true });
  }
}

/** A temp dir named after this process; those of killed rehearsals (their process gone) are removed. */
function temporaryDir(): string {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(/^uvirtio-rehearse-(\d+)-/.exec(name)?.[1] ?? NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !pidAlive(pid)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
  return mkdtempSync(join(tmpdir(), `uvirtio-rehearse-${process.pid}-`));
}

/** Temp files of the cycle snapshots a killed rehearsal was writing (their writer gone) are removed. */
function removeKilledWrites(dir: string): void {
  const targets = new Set(readdirSync(dir).map((f) => /^\.(cycle-\d+\.json)\.\d+\.tmp$/.exec(f)?.[1]).filter((f) => f !== undefined));
  for (const target of targets) removeStaleSnapshotTemps(dir, target);
}

function throwIfAborted(signal: AbortSignal | null): void {
  if (signal?.aborted) throw signal.reason as Error;
}

/**
 * The device steps (set-up, stop, reinit, verification): each bounded — the SDK bounds the step
 * itself, this bound (a margin longer) is the backstop — and ended at a signal; the one in flight
 * is known, so that the device is not closed under it.
 */
class DeviceSteps {
  running: Promise<unknown> | null = null;
  constructor(private readonly timeoutMs: number, private readonly signal: AbortSignal | null) {}

  /**
   * `p`, bounded. `release`, for a step that acquires something (an open, a driver set-up): what
   * `p` brings when it completes after the wait ended (its bound, a signal) is released then —
   * nobody else holds it.
   */
  run<T>(p: Promise<T>, what: string, release?: (v: T) => unknown): Promise<T> {
    this.running = p;
    const done = (): void => {
      if (this.running === p) this.running = null;
    };
    p.then(done, done);
    const waited = bounded(p, { what, ms: this.timeoutMs + BOUNDS.MARGIN_MS }, this.signal);
    return release ? waited.catch((e: unknown) => {
      releaseWhenDone(p, release);
      throw e;
    }) : waited;
  }
}

interface RunContext {
  timeoutMs: number;
  signal: AbortSignal | null;
  rng: () => number;
  steps: DeviceSteps;
}

/**
 * Reinit onto `next`; resolves with the target's refusal when it refused and the source took the
 * rings back (null when the reinit worked). A refusing target (FEATURES_OK, the device state, a
 * timeout) leaves the driver stopped with its requests held, so the source can take them again
 * and they complete there. When even the source refuses, the error goes up, and the rehearsal's
 * close rejects what is pending with it.
 */
async function reinitOrFallBack(work: Workload, snap: DeviceSnapshot, current: OpenedDevice, next: OpenedDevice,
  steps: DeviceSteps): Promise<UvirtioError | null> {
  try {
    await steps.run(work.reinit(snap, next === current ? {} : { target: next.transport }), `the reinit of ${next.address}`);
    return null;
  } catch (e) {
    if (next === current || !(e instanceof UvirtioError) || work.driving().phase !== 'stopped') throw e;
    await steps.run(work.reinit(snap, { target: current.transport }), `the fall-back reinit of ${current.address}`);
    return e;
  }
}

/** The cycles, the rest of the traffic, and the verification: every wait bounded and abortable. */
async function runCycles(o: RehearsalOptions, work: Workload, source: OpenedDevice, target: OpenedDevice | undefined, dir: string,
  { timeoutMs, signal, rng, steps }: RunContext): Promise<{ reports: CycleReport[]; verdict: Verdict; refused?: RehearsalReport['refused'] }> {
  const perCycle = o.requestsPerCycle ?? 200;
  const reports: CycleReport[] = [];
  let refused: RehearsalReport['refused'];
  const wait = { stallMs: timeoutMs, signal };
  const traffic = new Traffic(work, { inflight: Math.min(o.inflight, work.maxInflight ?? Infinity), budget: perCycle * (o.cycles + 1) });
  let current = source;
  try {
    traffic.start();
    for (let cycle = 1; cycle <= o.cycles; cycle++) {
      // Stop at a seeded random point of this cycle, while requests are in flight.
      await traffic.completedAtLeast((cycle - 1) * perCycle + randomInt(rng, 1, perCycle), wait);
      if (traffic.errors.length > 0) throw traffic.errors[0];
      // Two turns of the event loop: the requests issued as others completed reach the ring, and a
      // device polling it fetches them — so the stop finds chains in the ring (and, in hold mode,
      // held by the device), not only requests waiting to get in.
      await new Promise((r) => setImmediate(() => setImmediate(r)));
      const next = target ? (current === source ? target : source) : source;
      const started = process.hrtime.bigint();
      const inFlightAtStop = traffic.outstanding;
      const mechanism = await steps.run(work.stop({ mechanism: o.mechanism, timeoutMs }), `the stop of ${current.address}`);
      const file = join(dir, `cycle-${cycle}.json`);
      const taken = work.snapshot();
      const inRingAtStop = taken.queues.reduce((n, q) => n + q.inFlight, 0);
      writeSnapshotFile(file, taken);
      const snap = readSnapshotFile(file);
      const refusal = await reinitOrFallBack(work, snap, current, next, steps);
      if (refusal) {
        refused = { cycle, target: next.address, error: refusal.toJSON() };
        break;
      }
      const pauseMs = Number(process.hrtime.bigint() - started) / 1e6;
      const report = { cycle, from: current.address, to: next.address, mechanism, inFlightAtStop, inRingAtStop, snapshotFile: file, pauseMs: round(pauseMs) };
      reports.push(report);
      o.onCycle?.(report);
      current = next;
    }
    if (refused) traffic.stop(); // a refused migration ends the cycling; what is in flight completes on the source
    await traffic.idle(wait); // the rest of the budget runs on the device the last cycle left live
    if (traffic.errors.length > 0) throw traffic.errors[0];
  } finally {
    traffic.stop();
  }
  const verdict = await steps.run(work.verify(), 'the verification');
  return { reports, verdict, ...(refused ? { refused } : {}) };
}

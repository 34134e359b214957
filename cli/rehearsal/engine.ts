// A migration rehearsal: traffic with requests in flight → stop at a seeded random point →
// snapshot written to a file and read back (validated) → reinit on the same device or on `--to`
// (alternating each cycle, as a ping-pong migration) → traffic goes on; at the end every request
// is checked for having been done exactly once with the right data.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport, type OpenedDevice } from '../../lib/open.js';
import { UsageError } from '../../lib/virtio/errors.js';
import { readSnapshotFile, writeSnapshotFile, type Mechanism } from '../../lib/virtio/snapshot.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { BlkWorkload } from './blk.js';
import { NetWorkload } from './net.js';
import { randomInt, seededRandom } from './random.js';
import { Traffic } from './traffic.js';
import type { Verdict, Workload } from './workload.js';

export interface RehearsalOptions {
  device: string;
  to?: string;
  workload?: 'blk' | 'net';
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
  /** Bound on each stop (default 5000 ms). */
  stopTimeoutMs?: number;
  onCycle?: (c: CycleReport) => void;
  /** Stops the rehearsal between steps (Ctrl-C): the device is left stopped or live, never half-set. */
  signal?: AbortSignal;
}

export interface CycleReport {
  cycle: number;
  from: string;
  to: string;
  mechanism: Mechanism;
  inFlightAtStop: number;
  snapshotFile: string;
  pauseMs: number;
}

export interface RehearsalReport {
  ok: boolean;
  device: string;
  target: string;
  workload: 'blk' | 'net';
  mechanism: Mechanism | null;
  layout: Layout;
  cycles: number;
  seed: number;
  requests: { submitted: number; completed: number } & Verdict;
  pause_ms: { median: number; p99: number; max: number };
  cycle_reports: CycleReport[];
  /** Device-side executions counted by the reference device (sim only), to prove nothing ran twice. */
  device_executions?: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const round = (n: number): number => Math.round(n * 1000) / 1000;

export async function openWorkload(kind: 'blk' | 'net', dev: OpenedDevice, layout: Layout | 'auto', rng: () => number): Promise<Workload> {
  const chosen = layout === 'auto' ? dev.layout ?? 'auto' : layout;
  if (kind === 'blk') return new BlkWorkload(await BlkDriver.open(dev.transport, { layout: chosen, depth: 64 }), rng);
  return new NetWorkload(await NetDriver.open(dev.transport, { layout: chosen }), rng);
}

/** Sum of blk requests the reference device carried out, over every device used. */
function simExecutions(kind: 'blk' | 'net', devices: OpenedDevice[]): number | undefined {
  if (kind !== 'blk' || !devices.every((d) => d.sim)) return undefined;
  return devices.reduce((n, d) => n + d.sim!.stats.completed.reduce((a, b) => a + b, 0), 0);
}

export async function rehearse(o: RehearsalOptions): Promise<RehearsalReport> {
  if (!Number.isInteger(o.cycles) || o.cycles < 1) throw new UsageError('E_INVALID_ARGUMENT', `cycles must be a positive integer, got ${o.cycles}`);
  if (!Number.isInteger(o.inflight) || o.inflight < 1 || o.inflight > 4096) throw new UsageError('E_INVALID_ARGUMENT', `inflight must be 1 to 4096, got ${o.inflight}`);
  const rng = seededRandom(o.seed);
  const source = await openTransport(o.device);
  const kind = o.workload ?? (source.transport.deviceType === 1 ? 'net' : 'blk');
  const devices = [source];
  const target = o.to ? await openTransport(o.to, { shareWith: source }) : undefined;
  if (target) devices.push(target);
  const dir = o.snapshotDir ?? mkdtempSync(join(tmpdir(), 'uvirtio-rehearse-'));
  const work = await openWorkload(kind, source, o.layout, rng);
  const perCycle = o.requestsPerCycle ?? 200;
  const reports: CycleReport[] = [];
  let current = source;
  let failure: unknown;
  const traffic = new Traffic(work, { inflight: o.inflight, budget: perCycle * (o.cycles + 1) });
  try {
    traffic.start();
    for (let cycle = 1; cycle <= o.cycles && !o.signal?.aborted; cycle++) {
      // Stop at a seeded random point of this cycle, while requests are in flight.
      await traffic.completedAtLeast((cycle - 1) * perCycle + randomInt(rng, 1, perCycle));
      if (traffic.errors.length > 0) throw traffic.errors[0];
      const next = target ? (current === source ? target : source) : source;
      const started = process.hrtime.bigint();
      const inFlightAtStop = traffic.outstanding;
      const mechanism = await work.stop({ mechanism: o.mechanism, timeoutMs: o.stopTimeoutMs ?? 5000 });
      const file = join(dir, `cycle-${cycle}.json`);
      writeSnapshotFile(file, work.snapshot());
      const snap = readSnapshotFile(file);
      await work.reinit(snap, next === current ? {} : { target: next.transport });
      const pauseMs = Number(process.hrtime.bigint() - started) / 1e6;
      const report = { cycle, from: current.address, to: next.address, mechanism, inFlightAtStop, snapshotFile: file, pauseMs: round(pauseMs) };
      reports.push(report);
      o.onCycle?.(report);
      current = next;
    }
    if (o.signal?.aborted) traffic.stop(); // Ctrl-C: finish what is in flight, issue nothing more
    await traffic.idle(); // the rest of the budget runs on the device the last cycle left live
    if (traffic.errors.length > 0) throw traffic.errors[0];
  } catch (e) {
    failure = e;
    traffic.stop();
  }
  let verdict: Verdict = { ...work.problems };
  let executions: number | undefined;
  try {
    if (!failure && !o.signal?.aborted) {
      verdict = await work.verify();
      executions = simExecutions(kind, devices);
    }
  } catch (e) {
    failure ??= e;
  }
  await work.close().catch(() => undefined);
  for (const d of devices) d.transport.close();
  if (!o.snapshotDir && !o.keepSnapshots) rmSync(dir, { recursive: true, force: true });
  if (failure) throw failure;
  // The reference device counts what it carried out; more than the driver completed is a duplicate.
  if (executions !== undefined) verdict.duplicated += Math.max(0, executions - work.completed - (work as BlkWorkload).verifyReads);
  const pauses = reports.map((r) => r.pauseMs).sort((a, b) => a - b);
  const ok = verdict.lost === 0 && verdict.duplicated === 0 && verdict.corrupted === 0 && work.completed === work.submitted && !o.signal?.aborted;
  return {
    ok,
    device: source.address,
    target: target?.address ?? source.address,
    workload: kind,
    mechanism: reports[0]?.mechanism ?? null,
    layout: work.device.layout,
    cycles: reports.length,
    seed: o.seed,
    requests: { submitted: work.submitted, completed: work.completed, ...verdict },
    pause_ms: { median: round(percentile(pauses, 50)), p99: round(percentile(pauses, 99)), max: round(pauses.at(-1) ?? 0) },
    cycle_reports: reports,
    ...(executions !== undefined ? { device_executions: executions } : {}),
  };
}

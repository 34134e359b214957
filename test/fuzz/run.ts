// What every fuzz run shares, whatever the device type: two reference devices on one memory (the
// running one and a migration target), a driver on top, and the steps that do not depend on the
// device type — time passing, stops with snapshot files (some corrupted) and reinits on the same
// or the other device with a fall-back to the source, resumes, faults from the catalogue,
// recoveries — each checked: an error must be a UvirtioError whose code an injected fault explains.
// Subclasses (blk-run.ts, net-run.ts) issue their own requests and check their own data.

import type { StatefulDriver } from '../../drivers/stateful.js';
import type { AnySimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { DeviceStateRefusal } from '../../lib/spec/index.js';
import { UvirtioError, type ErrorCode } from '../../lib/errors.js';
import { parseSnapshot, type DeviceSnapshot } from '../../lib/virtio/snapshot/index.js';
import { allowedCodes, CATALOGUE, type FaultClass } from './catalogue.js';
import { FuzzFailure, Ledger } from './ledger.js';

export interface RunConfig {
  type: 'blk' | 'net';
  layout: 'split' | 'packed';
  interrupts: 'auto' | 'poll';
  state: 'ring-state' | 'suspend' | 'none';
  mode: 'drain' | 'hold';
  latency: 0 | 1;
  queueSize: 8 | 16;
  /** Bound on silence before the watchdog declares the device unresponsive (ms). */
  requestTimeoutMs: number;
  /** Bound on each stop and reset (ms). */
  stopTimeoutMs: number;
}

/** Faults that make the device go quiet: the short stop/reinit bound applies only once one is in. */
export const QUIET_FAULTS: ReadonlySet<string> = new Set(['completion-silence', 'stop-stuck', 'reset-stuck', 'interrupt-silence']);
/** The stop/reinit bound before any such fault (ms): long enough that a busy machine never trips it. */
const UNFAULTED_STOP_TIMEOUT_MS = 1000;
/** The codes of a wait that reached its bound (the request watchdog's, a stop's, a reset's). */
const BOUND_TIMEOUT_CODES: ReadonlySet<ErrorCode> = new Set(['E_STOP_TIMEOUT', 'E_SUSPEND_TIMEOUT', 'E_RESET_TIMEOUT', 'E_DEVICE_UNRESPONSIVE', 'E_REQUEST_TIMEOUT']);
/** Of those, the request watchdog's: bounded by requestTimeoutMs, not by the operation's bound. */
const WATCHDOG_CODES: ReadonlySet<ErrorCode> = new Set(['E_DEVICE_UNRESPONSIVE', 'E_REQUEST_TIMEOUT']);

export type Corruption = 'none' | 'index' | 'inflight' | 'version' | 'truncate' | 'type' | 'address';

export type Step =
  | { op: 'io'; n: number; writes: number }
  | { op: 'wait'; ms: number }
  | { op: 'migrate'; other: boolean; corrupt: Corruption }
  | { op: 'pause' }
  | { op: 'fault'; fault: number; count: number }
  | { op: 'clear' }
  | { op: 'recover' }
  | { op: 'config' };

/** The fault a `fault` step's index names for this configuration (the classes that apply to it, in turn). */
export function faultFor(config: Pick<RunConfig, 'type' | 'layout' | 'state' | 'mode'>, index: number): FaultClass {
  const usable = CATALOGUE.filter((f) => (!f.layout || f.layout === config.layout) && (!f.type || f.type === config.type)
    && (!f.needsDeviceState || (config.state === 'ring-state' && config.mode === 'hold')));
  return usable[index % usable.length]!;
}

/** Codes a corrupted snapshot may be refused with: by the SDK before any device is touched, or by the device. */
const REFUSED_SNAPSHOT: readonly ErrorCode[] = ['E_SNAPSHOT_INCONSISTENT', 'E_SNAPSHOT_VERSION', 'E_SNAPSHOT_TRUNCATED',
  'E_SNAPSHOT_DEVICE_TYPE', 'E_SNAPSHOT_ADDRESS', 'E_SNAPSHOT_USED_AHEAD', 'E_SNAPSHOT_INDEX', 'E_STATE_REFUSED', 'E_DEVICE_NEEDS_RESET'];

export abstract class FuzzRun<D extends StatefulDriver> {
  readonly ledger = new Ledger();
  readonly faults: FaultClass[] = [];
  /** Used elements the SDK's watchdog found without an interrupt (interrupt-silence). */
  missedInterrupts = 0;
  protected driver!: D;
  protected closed = false;
  private current!: VirtioPciTransport;
  private readonly sourceT: VirtioPciTransport;
  private readonly targetT: VirtioPciTransport;

  constructor(protected readonly config: RunConfig, protected readonly rng: () => number,
    protected readonly source: AnySimDevice, protected readonly target: AnySimDevice) {
    this.sourceT = new VirtioPciTransport(source.fn);
    this.targetT = new VirtioPciTransport(target.fn);
  }

  /** Opens the driver on a transport, with the run's bounds. */
  protected abstract openDriver(transport: VirtioPciTransport): Promise<D>;
  /** Issues one request of the device type (a write when `write`). */
  protected abstract issue(write: boolean): void;
  /** Reads the device configuration the way the driver does in service. */
  protected abstract readConfig(): void;
  /** With the device live and quiet at the end: checks what it holds. */
  protected abstract verify(): Promise<void>;
  /** Requests the device carried out that the ledger does not count (the final verification). */
  protected abstract extraExecutions(): number;

  /** The bounds and interrupt choice every driver is opened with. */
  protected get openOptions(): { layout: 'split' | 'packed'; interrupts: 'auto' | 'poll'; requestTimeoutMs: number; resetTimeoutMs: number } {
    return { layout: this.config.layout, interrupts: this.config.interrupts, requestTimeoutMs: this.config.requestTimeoutMs, resetTimeoutMs: this.config.stopTimeoutMs };
  }

  async open(): Promise<void> {
    this.driver = await this.openDriver(this.sourceT);
    this.current = this.sourceT;
    this.ledger.watch(this.driver.device);
  }

  /**
   * The bound for a stop or reinit: the run's short one once a fault has made the device quiet (so
   * the run ends fast), else a long one — there a timeout is a finding, not a busy machine.
   */
  protected get stopTimeoutMs(): number {
    return this.faults.some((f) => QUIET_FAULTS.has(f.kind)) ? this.config.stopTimeoutMs : Math.max(this.config.stopTimeoutMs, UNFAULTED_STOP_TIMEOUT_MS);
  }

  /**
   * An error must be a UvirtioError explained by the faults so far (or one of `extra`). A bound's
   * own timeout is explained by the bound when that bound was a short one (under 1000 ms): 30 ms
   * is shorter than a busy machine may need for a stop or reset the injected fault does not touch
   * (seen in CI: a SUSPEND that took more than 30 ms in a run whose only fault was reset-stuck).
   * Those are counted apart (ledger.shortBoundTimeouts); every other property still holds for the
   * run. `boundMs` is the bound the failed operation ran under (a stop's or reinit's timeoutMs:
   * the long one until a quiet fault is in, see stopTimeoutMs); the driver's resets run under
   * config.stopTimeoutMs, its watchdog under config.requestTimeoutMs. A timeout of a long bound
   * stays a finding, also in a run that injects a quiet fault later.
   */
  protected expectCode(what: string, e: unknown, extra: readonly ErrorCode[] = [], operation = true, boundMs = this.config.stopTimeoutMs): ErrorCode {
    if (!(e instanceof UvirtioError)) throw new FuzzFailure(`${what} threw a foreign error: ${String((e as Error)?.stack ?? e)}`);
    const explained = allowedCodes(this.faults).has(e.code) || extra.includes(e.code);
    const bound = WATCHDOG_CODES.has(e.code) ? this.config.requestTimeoutMs : boundMs;
    if (!explained && bound < UNFAULTED_STOP_TIMEOUT_MS && BOUND_TIMEOUT_CODES.has(e.code)) {
      this.ledger.shortBoundTimeouts++;
    } else if (!explained) {
      throw new FuzzFailure(`${what} failed with ${e.code} (${e.message}), which no injected fault explains (faults: ${this.faults.map((f) => f.kind).join(', ') || 'none'})`);
    }
    if (operation) this.ledger.operationCodes.set(e.code, (this.ledger.operationCodes.get(e.code) ?? 0) + 1);
    return e.code;
  }

  async step(s: Step): Promise<void> {
    if (this.closed) return;
    switch (s.op) {
      case 'io':
        for (let i = 0; i < s.n; i++) this.issue(this.rng() < s.writes);
        return;
      case 'wait':
        await (s.ms === 0 ? new Promise((r) => setImmediate(r)) : new Promise((r) => setTimeout(r, s.ms)));
        return;
      case 'fault':
        return this.inject(s.fault, s.count);
      case 'clear':
        this.source.clearFaults();
        this.target.clearFaults();
        return;
      case 'recover':
        if (this.driver.device.phase === 'needs-reset') await this.recover();
        return;
      case 'pause':
        return this.pause();
      case 'config':
        if (this.driver.device.phase !== 'live') return;
        try {
          this.readConfig();
        } catch (e) {
          if (e instanceof FuzzFailure) throw e;
          this.expectCode('a configuration read', e);
        }
        return;
      case 'migrate':
        return this.migrate(s.other, s.corrupt);
    }
  }

  private inject(index: number, count: number): void {
    const fault = faultFor(this.config, index);
    const running = this.current === this.sourceT ? this.source : this.target;
    const other = running === this.source ? this.target : this.source;
    // A target's refusal lands on the other device mostly, sometimes on the running one.
    const sim = fault.onTarget && count % 3 !== 0 ? other : running;
    sim.injectFault({ kind: fault.kind, queue: 0, count, reason: DeviceStateRefusal.MALFORMED });
    this.faults.push(fault);
  }

  private async recover(): Promise<void> {
    try {
      await this.driver.recover();
    } catch (e) {
      this.expectCode('recover', e);
    }
  }

  /** Stop, then resume where the mechanism allows it (suspend, quiesce), else reinit in place. */
  private async pause(): Promise<void> {
    if (this.driver.device.phase !== 'live') return;
    const mechanism = await this.stop();
    if (!mechanism) return;
    if (mechanism === 'ring-state') return this.reinitFrom(this.current, 'none');
    try {
      await this.driver.resume();
    } catch (e) {
      this.expectCode('resume', e);
      await this.giveUp(e as UvirtioError);
    }
  }

  private async stop(mechanism: 'auto' | 'quiesce' = 'auto'): Promise<string | null> {
    const bound = this.stopTimeoutMs;
    try {
      return await this.driver.stop({ mechanism, timeoutMs: bound });
    } catch (e) {
      this.expectCode('stop', e, [], true, bound);
      return null;
    }
  }

  /**
   * Restarts every ring at index 0 the way a user would (a quiesce stop and a reinit in place): a
   * device that corrupted a ring before the driver could see it (it lapped the driver) is only
   * back to normal after that. Resolves whether the device is live afterwards.
   */
  protected async freshRings(): Promise<boolean> {
    if (this.driver.device.phase === 'live' && (await this.stop('quiesce'))) await this.reinitFrom(this.current, 'none');
    return !this.closed && this.driver.device.phase === 'live';
  }

  private async migrate(other: boolean, corrupt: Corruption): Promise<void> {
    if (this.driver.device.phase !== 'live') return;
    if (!(await this.stop())) return;
    const next = other ? (this.current === this.sourceT ? this.targetT : this.sourceT) : this.current;
    await this.reinitFrom(next, corrupt);
  }

  /**
   * Snapshot (through a file's text), maybe a corrupted copy first (it must be refused and change
   * nothing), then reinit on `next`; if that fails, fall back to the device the driver came from;
   * if that fails too, give up (close, rejecting what is pending with the cause).
   */
  private async reinitFrom(next: VirtioPciTransport, corrupt: Corruption): Promise<void> {
    let snap: DeviceSnapshot;
    try {
      snap = parseSnapshot(JSON.stringify(this.driver.snapshot(), null, 2));
    } catch (e) {
      this.expectCode('snapshot', e);
      return this.giveUp(e as UvirtioError);
    }
    if (corrupt !== 'none') await this.tryCorrupt(snap, corrupt, next);
    if (this.closed) return;
    const from = this.current;
    for (const target of next === from ? [from] : [next, from]) {
      const bound = this.stopTimeoutMs;
      try {
        await this.driver.reinit(snap, { target, timeoutMs: bound });
        this.current = target;
        return;
      } catch (e) {
        this.expectCode(`reinit onto ${target === this.sourceT ? 'the source' : 'the second device'}`, e, [], true, bound);
        if (this.driver.device.phase !== 'stopped' || target === from) return this.giveUp(e as UvirtioError);
      }
    }
  }

  private async tryCorrupt(snap: DeviceSnapshot, corrupt: Corruption, next: VirtioPciTransport): Promise<void> {
    const bad = structuredClone(snap);
    const q = bad.queues[0]!;
    switch (corrupt) {
      case 'index': q.availState = (q.availState + 3) & 0xffff; break;
      case 'inflight': q.inFlight += 1; break;
      case 'version': (bad as { version: number }).version = 99; break;
      case 'type': bad.deviceType = bad.deviceType === 1 ? 2 : 1; break;
      case 'address': q.desc = '0x1'; break;
      default: break;
    }
    let text = JSON.stringify(bad);
    if (corrupt === 'truncate') text = text.slice(0, text.length >> 1);
    const bound = this.stopTimeoutMs;
    try {
      await this.driver.reinit(parseSnapshot(text), { target: next, timeoutMs: bound });
    } catch (e) {
      // A bad file is refused before any device is touched; an edited state the SDK cannot rule
      // out is refused by the device (DEVICE_STATE LOAD or its DRIVER_OK check).
      const code = this.expectCode(`reinit from a snapshot with a bad ${corrupt}`, e, REFUSED_SNAPSHOT, true, bound);
      const phase = this.driver.device.phase;
      if (phase === 'failed') return this.giveUp(e as UvirtioError);
      if (phase !== 'stopped') throw new FuzzFailure(`a refused snapshot (${corrupt}: ${code}) left the device ${phase}`);
      return;
    }
    throw new FuzzFailure(`a snapshot with a bad ${corrupt} was accepted`);
  }

  private async giveUp(cause: UvirtioError): Promise<void> {
    this.closed = true;
    await this.driver.close(cause);
  }

  /** Brings the device back if it can, lets everything settle, verifies, closes, counts executions. */
  async finish(): Promise<void> {
    this.source.clearFaults();
    this.target.clearFaults();
    if (!this.closed) {
      const phase = this.driver.device.phase;
      if (phase === 'needs-reset') await this.recover();
      if (phase === 'stopped') await this.reinitFrom(this.current, 'none');
    }
    if (!this.closed && this.driver.device.phase === 'live') {
      await this.ledger.allSettled();
      await this.verify();
    }
    if (!this.closed) await this.driver.close();
    this.closed = true;
    this.missedInterrupts = this.driver.missedInterrupts;
    await this.ledger.allSettled();
    this.checkExecutions();
    this.source.fn.close();
    this.target.fn.close();
  }

  /**
   * After a failure part-way (a broken property or the run's deadline): closes the driver and both
   * devices, so no poll loop or timer of this run outlives it and the process can end. Waits at
   * most `boundMs` for the driver's close; resolves with a sentence when that bound ran out (a
   * close that hangs is itself a finding), else with null. Never throws.
   */
  async abandon(boundMs: number): Promise<string | null> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    const closing = this.driver ? this.driver.close().then(() => true, () => true) : Promise.resolve(true);
    const bound = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), boundMs); });
    const closed = await Promise.race([closing, bound]);
    clearTimeout(timer);
    this.source.fn.close();
    this.target.fn.close();
    return closed ? null : `closing the driver did not end within ${boundMs} ms`;
  }

  /** The devices carried out each request at most once: no more executions than requests that completed or failed. */
  private checkExecutions(): void {
    const executions = [this.source, this.target].reduce((n, d) => n + d.stats.completed.reduce((a, b) => a + b, 0), 0);
    const bound = this.ledger.resolved + this.ledger.rejected + this.extraExecutions();
    if (executions > bound) {
      throw new FuzzFailure(`the device carried out ${executions} requests, but only ${bound} completed or failed: something ran twice`);
    }
  }
}

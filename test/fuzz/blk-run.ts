// One fuzz run on the reference blk device: a random sequence of steps — requests, time passing,
// stops with snapshot files (some of them corrupted) and reinits on the same or a second device,
// resumes, device faults from the catalogue, recoveries — then a teardown that brings the device
// back (or gives it up) and closes it. What it checks (FuzzFailure otherwise):
//   - nothing hangs: the run ends within its deadline;
//   - every request settles exactly once, and a rejection is a UvirtioError whose code one of the
//     injected faults explains (catalogue.ts); with no fault injected, nothing fails;
//   - data: a read returns the latest completed write of its sector, or a write that failed and
//     may have landed — never stale, never corrupt; at the end every sector is read back;
//   - nothing done twice: the device carried out no more requests than completed or failed.

import { BlkDriver } from '../../drivers/blk/index.js';
import { inspectSector, sectorPayload } from '../../cli/rehearsal/blk.js';
import { createSimDevice, type SimBlkDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { DeviceStateRefusal } from '../../lib/virtio/constants.js';
import { UvirtioError, type ErrorCode } from '../../lib/virtio/errors.js';
import { parseSnapshot, type DeviceSnapshot } from '../../lib/virtio/snapshot.js';
import { allowedCodes, CATALOGUE, type FaultClass } from './catalogue.js';
import { FuzzFailure, Ledger } from './ledger.js';

export interface BlkRunConfig {
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

/** The fault a `fault` step's index names for this configuration (the classes that apply to it, in turn). */
export function faultFor(config: Pick<BlkRunConfig, 'layout' | 'state' | 'mode'>, index: number): FaultClass {
  const usable = CATALOGUE.filter((f) => (!f.layout || f.layout === config.layout) && (!f.type || f.type === 'blk')
    && (!f.needsDeviceState || (config.state === 'ring-state' && config.mode === 'hold')));
  return usable[index % usable.length]!;
}

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

const SECTORS = 24;

export class BlkRun {
  readonly ledger = new Ledger();
  readonly faults: FaultClass[] = [];
  private readonly source: SimBlkDevice;
  private readonly target: SimBlkDevice;
  private blk!: BlkDriver;
  private current!: VirtioPciTransport;
  private readonly sourceT: VirtioPciTransport;
  private readonly targetT: VirtioPciTransport;
  private closed = false;
  /** Per sector: the version of the last completed write, versions of failed writes, and one request at a time. */
  private readonly committed = new Uint32Array(SECTORS);
  private readonly uncertain = Array.from({ length: SECTORS }, () => new Set<number>());
  private readonly busy = new Uint8Array(SECTORS);
  private readonly nextVersion = new Uint32Array(SECTORS).fill(1);
  private readonly run = 1 + Math.floor(Math.random() * 0xfffffff);
  private verifyReads = 0;
  /** Used elements the SDK's watchdog found without an interrupt (interrupt-silence). */
  missedInterrupts = 0;

  constructor(private readonly config: BlkRunConfig, private readonly rng: () => number) {
    const device = {
      type: 'blk' as const, capacitySectors: SECTORS, queueMaxSize: config.queueSize,
      offer: { packed: config.layout === 'packed' },
      completion: config.latency > 0 ? { latencyMs: config.latency } : 'immediate' as const,
      state: { ringState: config.state === 'ring-state', suspend: config.state === 'suspend' },
      mode: config.mode,
    };
    this.source = createSimDevice(device);
    this.target = createSimDevice({ ...device, dma: this.source.dma, sharedDisk: this.source.disk });
    this.sourceT = new VirtioPciTransport(this.source.fn);
    this.targetT = new VirtioPciTransport(this.target.fn);
  }

  async open(): Promise<void> {
    this.blk = await BlkDriver.open(this.sourceT, {
      layout: this.config.layout, interrupts: this.config.interrupts, depth: 8,
      requestTimeoutMs: this.config.requestTimeoutMs, resetTimeoutMs: this.config.stopTimeoutMs,
    });
    this.current = this.sourceT;
    this.ledger.watch(this.blk.device);
  }

  private get allowed(): Set<ErrorCode> {
    return allowedCodes(this.faults);
  }

  /** An operation's error must be a UvirtioError explained by the faults so far (or one of `extra`). */
  private expectCode(what: string, e: unknown, extra: readonly ErrorCode[] = [], operation = true): ErrorCode {
    if (!(e instanceof UvirtioError)) throw new FuzzFailure(`${what} threw a foreign error: ${String((e as Error)?.stack ?? e)}`);
    if (!this.allowed.has(e.code) && !extra.includes(e.code)) {
      throw new FuzzFailure(`${what} failed with ${e.code} (${e.message}), which no injected fault explains (faults: ${this.faultNames()})`);
    }
    if (operation) this.ledger.operationCodes.set(e.code, (this.ledger.operationCodes.get(e.code) ?? 0) + 1);
    return e.code;
  }

  private faultNames(): string {
    return this.faults.map((f) => f.kind).join(', ') || 'none';
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
        if (this.blk.device.phase === 'needs-reset') await this.recover();
        return;
      case 'pause':
        return this.pause();
      case 'config':
        if (this.blk.device.phase !== 'live') return;
        try {
          if (this.blk.refreshCapacity() !== SECTORS) throw new FuzzFailure(`capacity read back as ${this.blk.capacitySectors}`);
        } catch (e) {
          if (e instanceof FuzzFailure) throw e;
          this.expectCode('refreshCapacity', e);
        }
        return;
      case 'migrate':
        return this.migrate(s.other, s.corrupt);
    }
  }

  private inject(index: number, count: number): void {
    const fault = faultFor(this.config, index);
    const running = this.simOf(this.current);
    const other = running === this.source ? this.target : this.source;
    // A target's refusal lands on the other device mostly, sometimes on the running one.
    const sim = fault.onTarget && count % 3 !== 0 ? other : running;
    sim.injectFault({ kind: fault.kind, queue: 0, count, reason: DeviceStateRefusal.MALFORMED });
    this.faults.push(fault);
  }

  private simOf(t: VirtioPciTransport): SimBlkDevice {
    return t === this.sourceT ? this.source : this.target;
  }

  private pickSector(): number | null {
    const start = Math.floor(this.rng() * SECTORS);
    for (let i = 0; i < SECTORS; i++) {
      const s = (start + i) % SECTORS;
      if (!this.busy[s]) return s;
    }
    return null;
  }

  /** One request on a free sector: a versioned write, or a read checked against the model. */
  private issue(write: boolean): void {
    const sector = this.pickSector();
    if (sector === null) return;
    this.busy[sector] = 1;
    if (write) {
      const version = this.nextVersion[sector]!++;
      this.ledger.track(`write ${sector} v${version}`, this.blk.write(sector, sectorPayload(sector, version, this.run)), {
        resolved: () => {
          this.committed[sector] = version;
          this.uncertain[sector]!.clear();
        },
        rejected: (e) => {
          this.expectCode(`write ${sector} v${version}`, e, [], false);
          this.uncertain[sector]!.add(version);
        },
        settled: () => { this.busy[sector] = 0; },
      });
    } else {
      this.ledger.track(`read ${sector}`, this.blk.read(sector, 1), {
        resolved: (data) => this.checkRead(sector, data as Uint8Array),
        rejected: (e) => this.expectCode(`read ${sector}`, e, [], false),
        settled: () => { this.busy[sector] = 0; },
      });
    }
  }

  private checkRead(sector: number, data: Uint8Array): void {
    const got = inspectSector(sector, data);
    const committed = this.committed[sector]!;
    if (got === 'corrupt') throw new FuzzFailure(`read ${sector}: corrupt data (committed v${committed})`);
    const version = got === 'blank' || got.run !== this.run ? 0 : got.version;
    if (version === committed || this.uncertain[sector]!.has(version)) return;
    throw new FuzzFailure(`read ${sector}: version ${version}, but the last completed write was v${committed} (failed writes: ${[...this.uncertain[sector]!].join(', ') || 'none'})`);
  }

  private async recover(): Promise<void> {
    try {
      await this.blk.recover();
    } catch (e) {
      this.expectCode('recover', e);
    }
  }

  /** Stop, then resume where the mechanism allows it (suspend, quiesce), else reinit in place. */
  private async pause(): Promise<void> {
    if (this.blk.device.phase !== 'live') return;
    const mechanism = await this.stop();
    if (!mechanism) return;
    if (mechanism === 'ring-state') return this.reinitFrom(this.current, 'none');
    try {
      await this.blk.resume();
    } catch (e) {
      this.expectCode('resume', e);
      await this.giveUp(e as UvirtioError);
    }
  }

  private async stop(): Promise<string | null> {
    try {
      return await this.blk.stop({ timeoutMs: this.config.stopTimeoutMs });
    } catch (e) {
      this.expectCode('stop', e);
      return null;
    }
  }

  private async migrate(other: boolean, corrupt: Corruption): Promise<void> {
    if (this.blk.device.phase !== 'live') return;
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
      snap = parseSnapshot(JSON.stringify(this.blk.snapshot(), null, 2));
    } catch (e) {
      this.expectCode('snapshot', e);
      return this.giveUp(e as UvirtioError);
    }
    if (corrupt !== 'none') await this.tryCorrupt(snap, corrupt, next);
    if (this.closed) return;
    const from = this.current;
    for (const target of next === from ? [from] : [next, from]) {
      try {
        await this.blk.reinit(snap, { target, timeoutMs: this.config.stopTimeoutMs });
        this.current = target;
        return;
      } catch (e) {
        this.expectCode(`reinit onto ${target === this.sourceT ? 'the source' : 'the second device'}`, e);
        if (this.blk.device.phase !== 'stopped') return this.giveUp(e as UvirtioError);
        if (target === from) return this.giveUp(e as UvirtioError);
      }
    }
  }

  private async tryCorrupt(snap: DeviceSnapshot, corrupt: Corruption, next: VirtioPciTransport): Promise<void> {
    const bad = structuredClone(snap);
    const q = bad.queues[0]!;
    let text: string;
    switch (corrupt) {
      case 'index': q.availState = (q.availState + 3) & 0xffff; break;
      case 'inflight': q.inFlight += 1; break;
      case 'version': (bad as { version: number }).version = 99; break;
      case 'type': bad.deviceType = 1; break;
      case 'address': q.desc = '0x1'; break;
      default: break;
    }
    text = JSON.stringify(bad);
    if (corrupt === 'truncate') text = text.slice(0, text.length >> 1);
    try {
      await this.blk.reinit(parseSnapshot(text), { target: next, timeoutMs: this.config.stopTimeoutMs });
    } catch (e) {
      // A bad file is refused before any device is touched; an edited state the SDK cannot rule
      // out is refused by the device (DEVICE_STATE LOAD or its DRIVER_OK check).
      const code = this.expectCode(`reinit from a snapshot with a bad ${corrupt}`, e,
        ['E_SNAPSHOT_INCONSISTENT', 'E_SNAPSHOT_VERSION', 'E_SNAPSHOT_TRUNCATED', 'E_SNAPSHOT_DEVICE_TYPE', 'E_SNAPSHOT_ADDRESS',
          'E_SNAPSHOT_USED_AHEAD', 'E_SNAPSHOT_INDEX', 'E_STATE_REFUSED', 'E_DEVICE_NEEDS_RESET']);
      if (this.blk.device.phase !== 'stopped') {
        if (this.blk.device.phase === 'failed') return this.giveUp(e as UvirtioError);
        throw new FuzzFailure(`a refused snapshot (${corrupt}: ${code}) left the device ${this.blk.device.phase}`);
      }
      return;
    }
    throw new FuzzFailure(`a snapshot with a bad ${corrupt} was accepted`);
  }

  private async giveUp(cause: UvirtioError): Promise<void> {
    this.closed = true;
    await this.blk.close(cause);
  }

  /** Brings the device back if it can, lets everything settle, reads every sector back, closes. */
  async finish(): Promise<void> {
    this.source.clearFaults();
    this.target.clearFaults();
    if (!this.closed) {
      const phase = this.blk.device.phase;
      if (phase === 'needs-reset') await this.recover();
      if (phase === 'stopped') await this.reinitFrom(this.current, 'none');
    }
    if (!this.closed && this.blk.device.phase === 'live') {
      await this.ledger.allSettled();
      await this.verifyDisk();
    }
    if (!this.closed) await this.blk.close();
    this.closed = true;
    this.missedInterrupts = this.blk.missedInterrupts;
    await this.ledger.allSettled();
    this.checkExecutions();
    this.source.fn.close();
    this.target.fn.close();
  }

  private async verifyDisk(): Promise<void> {
    for (let sector = 0; sector < SECTORS; sector++) {
      if (this.blk.device.phase !== 'live') return;
      let data: Uint8Array;
      try {
        this.verifyReads++;
        data = await this.blk.read(sector, 1);
      } catch (e) {
        this.expectCode(`final read ${sector}`, e);
        return;
      }
      this.checkRead(sector, data);
    }
  }

  /** The device carried out each request at most once: no more executions than requests that completed or failed. */
  private checkExecutions(): void {
    const executions = [this.source, this.target].reduce((n, d) => n + d.stats.completed.reduce((a, b) => a + b, 0), 0);
    const bound = this.ledger.resolved + this.ledger.rejected + this.verifyReads;
    if (executions > bound) {
      throw new FuzzFailure(`the device carried out ${executions} requests, but only ${bound} completed or failed: something ran twice`);
    }
  }
}

// One fuzz run on the reference blk device (run.ts has the steps every device type shares). Its
// requests: versioned single-sector writes and checked reads, one request per sector at a time.
// Its data property: a read returns the latest completed write of its sector, or a write that
// failed and may have landed — never stale, never corrupt; at the end every sector is read back.

import { BlkDriver } from '../../drivers/blk/index.js';
import { inspectSector, sectorPayload } from '../../cli/rehearsal/blk.js';
import { createSimDevice, type SimBlkDevice } from '../../lib/sim/index.js';
import type { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { FuzzFailure } from './ledger.js';
import { FuzzRun, type RunConfig } from './run.js';

const SECTORS = 24;

export class BlkRun extends FuzzRun<BlkDriver> {
  /** Per sector: the version of the last completed write, versions of failed writes, and one request at a time. */
  private readonly committed = new Uint32Array(SECTORS);
  private readonly uncertain = Array.from({ length: SECTORS }, () => new Set<number>());
  private readonly busy = new Uint8Array(SECTORS);
  private readonly nextVersion = new Uint32Array(SECTORS).fill(1);
  private readonly run = 1 + Math.floor(Math.random() * 0xfffffff);
  private verifyReads = 0;

  constructor(config: RunConfig, rng: () => number) {
    const device = {
      type: 'blk' as const, capacitySectors: SECTORS, queueMaxSize: config.queueSize,
      offer: { packed: config.layout === 'packed' },
      completion: config.latency > 0 ? { latencyMs: config.latency } : 'immediate' as const,
      state: { ringState: config.state === 'ring-state', suspend: config.state === 'suspend' },
      mode: config.mode,
    };
    const source: SimBlkDevice = createSimDevice(device);
    super(config, rng, source, createSimDevice({ ...device, dma: source.dma, sharedDisk: source.disk }));
  }

  protected openDriver(transport: VirtioPciTransport): Promise<BlkDriver> {
    return BlkDriver.open(transport, { ...this.openOptions, depth: 8 });
  }

  protected readConfig(): void {
    if (this.driver.refreshCapacity() !== SECTORS) throw new FuzzFailure(`capacity read back as ${this.driver.capacitySectors}`);
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
  protected issue(write: boolean): void {
    const sector = this.pickSector();
    if (sector === null) return;
    this.busy[sector] = 1;
    const settled = (): void => { this.busy[sector] = 0; };
    if (write) {
      const version = this.nextVersion[sector]!++;
      this.ledger.track(`write ${sector} v${version}`, this.driver.write(sector, sectorPayload(sector, version, this.run)), {
        resolved: () => {
          this.committed[sector] = version;
          this.uncertain[sector]!.clear();
        },
        rejected: (e) => {
          this.expectCode(`write ${sector} v${version}`, e, [], false);
          this.uncertain[sector]!.add(version);
        },
        settled,
      });
    } else {
      this.ledger.track(`read ${sector}`, this.driver.read(sector, 1), {
        resolved: (data) => this.checkRead(sector, data as Uint8Array),
        rejected: (e) => this.expectCode(`read ${sector}`, e, [], false),
        settled,
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

  protected async verify(): Promise<void> {
    for (let sector = 0; sector < SECTORS; sector++) {
      if (this.driver.device.phase !== 'live') return;
      let data: Uint8Array;
      try {
        this.verifyReads++;
        data = await this.driver.read(sector, 1);
      } catch (e) {
        this.expectCode(`final read ${sector}`, e);
        return;
      }
      this.checkRead(sector, data);
    }
  }

  protected extraExecutions(): number {
    return this.verifyReads;
  }
}

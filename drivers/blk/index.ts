// virtio-blk driver (virtio 1.2 §5.2) on VirtioDevice: read, write, flush, get-id, discard and
// write-zeroes; one or many request queues (MQ); a bounded queue depth with back-pressure; a
// Promise API and a batch API that kicks each queue once; interrupt or polling delivery; and
// stop/reinit across all queues (StatefulDriver).
//
// Requests are planned here (plan.ts) and carried out by runner.ts over the slots (slots.ts).
// Everything the device would refuse — beyond capacity,
// not whole logical blocks, a write to a read-only disk, a command it does not offer — is refused
// here first, with its own code.

import { BLK_ID_BYTES, BLK_REQ_HEADER_LEN, BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkReq, DeviceType } from '../../lib/spec/index.js';
import { DeviceError, RequestError, UsageError, type UvirtioError } from '../../lib/errors.js';
import { DRIVER_OPEN_OPTION_KEYS, VirtioDevice, checkDriverOpenOptions, type OpenOptions, type VirtioTransport, checkTransportArgument } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import { StatefulDriver } from '../stateful.js';
import { readLimits, type BlkLimits, type RangeLimits } from './limits.js';
import { encodeRanges, planRanges, splitTransfer, type SectorRange } from './plan.js';
import { DATA_OFFSET, RequestRunner, STATUS_OFFSET, type Planned } from './runner.js';
import { SlotPool } from './slots.js';
import { DmaTargets } from './dma-target.js';
import { shown } from '../../lib/util/shown.js';
import { flag, optionalValue, optionsObject, type OptionKeys } from '../../lib/util/options.js';
import { blkWrites, sectorRanges, writeData } from './args.js';
import { plainBytes } from '../../lib/util/plain-bytes.js';

export type { SectorRange } from './plan.js';
export type { BlkLimits, RangeLimits } from './limits.js';

/**
 * How {@link BlkDriver.open} sets up a virtio-blk device: the device-level options of OpenOptions
 * (the driver picks the feature bits itself), the ring features, and queue sizing.
 */
export interface BlkOpenOptions extends Omit<OpenOptions, 'features'> {
  /** Ring layout: 'packed' requires VIRTIO_F_RING_PACKED, 'split' refuses it, 'auto' (default) takes packed when offered. */
  layout?: Layout | 'auto';
  /** Accept VIRTIO_F_INDIRECT_DESC when offered (default true): long chains take one ring slot. */
  indirect?: boolean;
  /** Accept VIRTIO_F_EVENT_IDX when offered (default true): notifications suppressed by event index (virtio 1.2 §2.7.10). */
  eventIdx?: boolean;
  /** Ring size (default: the device's maximum, at most 256). */
  queueSize?: number;
  /** Request queues to use with MQ (default: all num_queues the device has, at most 16, and never more than its transport has). */
  queues?: number;
  /** Requests in flight per queue at most (default 32); more wait their turn. */
  depth?: number;
  /** Largest transfer of one request in bytes (default 64 KiB); larger reads and writes become several requests. */
  maxTransfer?: number;
}
/** writeZeroes' option keys. */
const WRITE_ZEROES_OPTION_KEYS: OptionKeys<{ unmap?: boolean }> = { unmap: true };
/** BlkOpenOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const BLK_OPEN_OPTION_KEYS: OptionKeys<BlkOpenOptions> = {
  ...DRIVER_OPEN_OPTION_KEYS, layout: true, indirect: true, eventIdx: true, queueSize: true, queues: true, depth: true, maxTransfer: true,
};

/** One write for {@link BlkDriver.writeMany}: bytes to put at a sector. */
export interface BlkWrite {
  /** First sector written, in 512-byte units. */
  sector: number;
  /** The bytes to write: a positive multiple of 512 (and of the logical block size). */
  data: Uint8Array;
}

/**
 * A virtio-blk driver (virtio 1.2 §5.2): read, write, flush, get-id, discard and write-zeroes as
 * promises, over one or several request queues (VIRTIO_BLK_F_MQ), with a bounded queue depth and
 * back-pressure. Sectors are 512 bytes. What the device would refuse is refused before it reaches
 * the device: {@link UsageError} E_INVALID_ARGUMENT (bad sizes, unaligned ranges), {@link RequestError}
 * E_OUT_OF_RANGE (beyond capacity) and E_READ_ONLY (VIRTIO_BLK_F_RO), E_UNSUPPORTED (a command the
 * device does not offer); a failed request rejects with RequestError E_IO_ERROR.
 */
export class BlkDriver extends StatefulDriver {
  /** The device's limits read at open (capacity, block size, segment and transfer sizes, discard/write-zeroes). */
  readonly limits: BlkLimits;
  /** The request queues in use (indices 0 … n − 1). */
  readonly queueCount: number;
  private readonly rqs: RequestQueue<undefined>[];
  private readonly pool: SlotPool;
  private readonly runner: RequestRunner;

  /** The memory the slots came from (the source's; a reinit target shares it). */
  private readonly dma: DmaAllocator;
  /** readDma targets already checked. */
  private readonly dmaTargets: DmaTargets;

  private constructor(device: VirtioDevice, queues: QueueSet, rqs: RequestQueue<undefined>[], pool: SlotPool, limits: BlkLimits, dma: DmaAllocator) {
    super(device, queues);
    this.dma = dma;
    this.dmaTargets = new DmaTargets(dma, device.address);
    this.rqs = rqs;
    this.queueCount = rqs.length;
    this.pool = pool;
    this.limits = limits;
    this.runner = new RequestRunner(rqs, pool, limits, device);
    // A readDma waiting for a request slot holds its target: free() of it is refused (E_DMA_IN_USE)
    // while the driver's queues are open (the queue's guard drops the check when it closes).
    rqs[0]!.vq.guardFree((iova, size) => this.runner.waitingTargetUse(iova, size));
  }

  /**
   * Initialises the virtio-blk device behind `transport` (virtio 1.2 §3.1.1, §5.2.5), sets up its
   * request queues and reaches DRIVER_OK. Rejects with DeviceError E_NOT_VIRTIO when it is not a
   * block device (type 2), UsageError E_INVALID_ARGUMENT for bad options (maxTransfer not a
   * positive multiple of 512 bytes, depth outside 1–4096, queues < 1; a maxTransfer or queueSize
   * too small for one block), DeviceError E_CAP_INVALID when the device's own limits rule out a
   * request of one block (blk_size not a power-of-two multiple of 512, seg_max × size_max below it),
   * and VirtioDevice.open's errors (E_FEATURES_NOT_OK, E_RESET_TIMEOUT, …); the device is closed
   * again on failure.
   */
  static async open(transport: VirtioTransport, options: BlkOpenOptions = {}): Promise<BlkDriver> {
    checkTransportArgument(transport, 'BlkDriver.open');
    // Every option is checked before the device is touched: a refusal leaves the transport as it was.
    const checked = checkDriverOpenOptions(options, 'BlkDriver.open', BLK_OPEN_OPTION_KEYS, ['indirect', 'eventIdx']);
    options = checked.options;
    if (transport.deviceType !== DeviceType.BLK) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not blk (2)`,
        'open it with the driver for its type (NetDriver, RngDriver, ConsoleDriver, …), or give the address of a virtio-blk device (`uvirtio list` names each device\'s type)');
    }
    const maxTransfer = options.maxTransfer ?? 64 * 1024;
    if (!Number.isInteger(maxTransfer) || maxTransfer < BLK_SECTOR_SIZE || maxTransfer % BLK_SECTOR_SIZE !== 0) {
      throw new UsageError('E_INVALID_ARGUMENT', `maxTransfer must be a positive multiple of ${BLK_SECTOR_SIZE}, got ${shown(maxTransfer)}`);
    }
    const depth = options.depth ?? 32;
    if (!Number.isInteger(depth) || depth < 1 || depth > 4096) {
      throw new UsageError('E_INVALID_ARGUMENT', `depth must be 1 to 4096, got ${shown(depth)}`);
    }
    const wantedQueues = options.queues ?? 16;
    if (!Number.isInteger(wantedQueues) || wantedQueues < 1) {
      throw new UsageError('E_INVALID_ARGUMENT', `queues must be a positive integer, got ${shown(options.queues)}`);
    }
    const device = await VirtioDevice.open(transport, {
      ...checked.open,
      features: {
        optional: [BlkFeature.FLUSH, BlkFeature.RO, BlkFeature.BLK_SIZE, BlkFeature.SEG_MAX, BlkFeature.SIZE_MAX,
          BlkFeature.MQ, BlkFeature.DISCARD, BlkFeature.WRITE_ZEROES],
        layout: options.layout ?? 'auto', indirect: options.indirect ?? true, eventIdx: options.eventIdx ?? true,
      },
    });
    try {
      // virtio 1.2 §5.2.2: one request queue, or num_queues with MQ — but no more than the
      // transport has (virtio-pci's num_queues, vhost-user's GET_QUEUE_NUM): a driver may use
      // fewer queues than the device announces, and one the transport lacks cannot be set up.
      const offered = device.has(BlkFeature.MQ) ? Math.max(1, device.config.read16(BlkConfig.NUM_QUEUES)) : 1;
      const count = Math.max(1, Math.min(offered, wantedQueues, transport.numQueues));
      const queues = new QueueSet(device);
      const rqs: RequestQueue<undefined>[] = [];
      for (let q = 0; q < count; q++) rqs.push(queues.add<undefined>(q, { size: options.queueSize ?? Math.min(transport.queueMaxSize(q), 256) }));
      const limits = readLimits(device, Math.min(...rqs.map((rq) => rq.vq.size)), maxTransfer);
      await device.driverOk();
      const pool = new SlotPool(device.dma, rqs.map((_, q) => q), depth, DATA_OFFSET + limits.maxTransfer, BLK_REQ_HEADER_LEN, STATUS_OFFSET, DATA_OFFSET);
      return new BlkDriver(device, queues, rqs, pool, limits, device.dma);
    } catch (e) {
      // Reset and released, the caller's transport left open and unowned (as VirtioDevice.open's
      // own refusals leave it): a corrected open on it works.
      await device.close({ keepTransport: true });
      throw e;
    }
  }

  /** Device size in 512-byte sectors, as last read (at open, or by refreshCapacity()). */
  get capacitySectors(): number {
    return this.limits.capacitySectors;
  }

  /**
   * Reads the capacity again from the device configuration (virtio 1.2 §5.2.4) — after a
   * configuration change, e.g. a resize — and returns it (512-byte sectors). Throws
   * E_CONFIG_UNSTABLE when config_generation keeps changing (the old capacity stays).
   */
  refreshCapacity(): number {
    const sectors = Number(this.device.config.read64(BlkConfig.CAPACITY));
    this.limits.capacitySectors = sectors;
    return sectors;
  }
  /** Whether VIRTIO_BLK_F_RO was negotiated: writes, discards and write-zeroes reject with E_READ_ONLY. */
  get readOnly(): boolean {
    return this.limits.readOnly;
  }
  /** Bytes one request carries at most. */
  get maxTransfer(): number {
    return this.limits.maxTransfer;
  }
  /** The first request queue (statistics, and the state a test inspects). */
  get requests(): RequestQueue<undefined> {
    return this.rqs[0]!;
  }
  /** Request queue `q`. */
  requestQueue(q: number): RequestQueue<undefined> {
    const rq = Number.isInteger(q) ? this.rqs[q] : undefined;
    if (!rq) throw new UsageError('E_INVALID_ARGUMENT', `${this.device.address}: no request queue ${shown(q)} (the driver uses ${this.queueCount})`);
    return rq;
  }

  /**
   * Reads `sectors` sectors from `sector` (whole logical blocks). Resolves with a copy in an
   * ArrayBuffer of its own (lib/util/copy-bytes.ts); readDma() reads without the copy.
   */
  read(sector: number, sectors: number): Promise<Uint8Array> {
    // One request with a slot free now goes the short way (one promise, the queue's callback path).
    try {
      const planned = this.planTransfer(BlkReq.IN, sector, sectors, undefined);
      const one = planned.length === 1 ? this.runner.runOne(planned[0]!) : null;
      if (one) return one as Promise<Uint8Array>;
    } catch (e) {
      return Promise.reject(e);
    }
    return this.readMany([{ sector, sectors }]).then((r) => r[0]!);
  }

  /**
   * Reads `sectors` sectors from `sector` straight into the caller's DMA memory: `target` is a region
   * of this driver's `device.dma` (DmaAllocator.alloc), and the device writes bytes [offset, offset +
   * sectors × 512) of it; nothing is copied (the way a C driver reads). Resolves with that view of
   * `target.bytes`. Keep the region, and do not touch those bytes, until the promise settles: the
   * device owns them until then — from the call on, also while the read waits for a request slot,
   * for room on the ring or for a stopped device to come back — and `device.dma.free(target)`
   * meanwhile is refused (DmaError E_DMA_IN_USE, nothing freed). At most maxTransfer bytes (one request). Rejects E_INVALID_ARGUMENT when the
   * range is not whole blocks of the device, longer than maxTransfer, or not inside memory of this
   * driver's allocator still allocated (DmaAllocator.lookup: a region freed is refused, also when
   * its memory was handed out again); E_OUT_OF_RANGE beyond the disk; otherwise as read().
   */
  readDma(sector: number, sectors: number, target: DmaRegion, offset = 0): Promise<Uint8Array> {
    try {
      this.runner.checkOpen(); // before the target check: a closed driver's allocator may be closed too
      this.checkRange(sector, sectors);
      const bytes = sectors * BLK_SECTOR_SIZE;
      // Each field is read once: a getter or Proxy could answer the check one IOVA and the device another.
      const { iova, view } = this.dmaTargets.check(target, offset, bytes);
      if (bytes > this.limits.maxTransfer) {
        throw new UsageError('E_INVALID_ARGUMENT', `readDma: ${bytes} bytes is more than one request carries (maxTransfer ${this.limits.maxTransfer})`,
          'read at most maxTransfer bytes per call');
      }
      this.checkWholeBlocks(sector, sectors);
      // Planned objects keep one shape (all fields, in this order) so the runner's code stays monomorphic.
      const p: Planned = { type: BlkReq.IN, sector, out: undefined, inBytes: bytes, into: { iova: iova + BigInt(offset), bytes: view.subarray(offset, offset + bytes) }, copyTo: undefined };
      return (this.runner.runOne(p) ?? this.runner.run([p]).then((r) => r[0])) as Promise<Uint8Array>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Reads `sectors` sectors from `sector` into the caller's own memory, `target` (a Uint8Array; a
   * Buffer is one) at `offset`: the bytes are copied there from the driver's DMA memory, so nothing
   * is allocated per read (read() makes a new ArrayBuffer for each result, readDma() needs memory
   * from the driver's allocator). Resolves with the view of `target` that was written,
   * [offset, offset + sectors × 512). Do not read those bytes until the promise settles; a read
   * longer than maxTransfer goes as several requests, and when one of them fails (the promise
   * rejects) the range may hold part of the data. Rejects E_INVALID_ARGUMENT when `target` is not a
   * Uint8Array or the range does not fit at `offset` (a non-negative integer), or the sectors are not
   * whole blocks; otherwise as read().
   */
  readInto(sector: number, sectors: number, target: Uint8Array, offset = 0): Promise<Uint8Array> {
    try {
      this.runner.checkOpen();
      const view = plainBytes(target);
      if (!view) {
        throw new UsageError('E_INVALID_ARGUMENT', `readInto: target must be a Uint8Array, got ${shown(target)}`, 'pass the memory to read into as a Uint8Array (a Buffer is one)');
      }
      const planned = this.planTransfer(BlkReq.IN, sector, sectors, undefined); // checks sector and sectors
      const bytes = sectors * BLK_SECTOR_SIZE;
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes > view.length) {
        throw new UsageError('E_INVALID_ARGUMENT', `readInto: ${bytes} bytes at offset ${shown(offset)} do not fit the target's ${view.length} bytes`,
          'pass an offset (a non-negative integer) that leaves sectors × 512 bytes in the target');
      }
      for (const p of planned) {
        const at = offset + (p.sector - sector) * BLK_SECTOR_SIZE;
        p.copyTo = view.subarray(at, at + p.inBytes);
      }
      const result = view.subarray(offset, offset + bytes);
      const one = planned.length === 1 ? this.runner.runOne(planned[0]!) : null;
      return (one ?? this.runner.run(planned)).then(() => result);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Writes `data` (whole logical blocks) at `sector`. */
  write(sector: number, data: Uint8Array): Promise<void> {
    try {
      data = writeData(data, 'write');
      if (data.length === 0 || data.length % BLK_SECTOR_SIZE !== 0) return this.writeMany([{ sector, data }]);
      this.refuseIfReadOnly('write');
      const planned = this.planTransfer(BlkReq.OUT, sector, data.length / BLK_SECTOR_SIZE, data);
      const one = planned.length === 1 ? this.runner.runOne(planned[0]!) : null;
      if (one) return one.then(() => undefined);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.writeMany([{ sector, data }]);
  }

  /** Reads every range; results in order. All are planned and checked before any reaches the device. */
  async readMany(given: readonly SectorRange[]): Promise<Uint8Array[]> {
    const ranges = sectorRanges(given, 'readMany');
    const planned = ranges.map((r) => this.planTransfer(BlkReq.IN, r.sector, r.sectors, undefined));
    const results = await this.runner.run(planned.flat());
    const out: Uint8Array[] = [];
    let at = 0;
    for (const [i, pieces] of planned.entries()) {
      const first = ranges[i]!.sector;
      if (pieces.length === 1) {
        out.push(results[at++]!);
        continue;
      }
      const buf = new Uint8Array(ranges[i]!.sectors * BLK_SECTOR_SIZE);
      for (const p of pieces) buf.set(results[at++]!, (p.sector - first) * BLK_SECTOR_SIZE);
      out.push(buf);
    }
    return out;
  }

  /** Writes every buffer; resolves when all are done. Checked in full before any reaches the device. */
  async writeMany(given: readonly BlkWrite[]): Promise<void> {
    const planned = blkWrites(given).map((w) => {
      if (w.data.length === 0 || w.data.length % BLK_SECTOR_SIZE !== 0) {
        throw new UsageError('E_INVALID_ARGUMENT', `write length ${w.data.length} is not a positive multiple of ${BLK_SECTOR_SIZE}`);
      }
      this.refuseIfReadOnly('write');
      return this.planTransfer(BlkReq.OUT, w.sector, w.data.length / BLK_SECTOR_SIZE, w.data);
    });
    await this.runner.run(planned.flat());
  }

  /** VIRTIO_BLK_T_DISCARD over `ranges` (each aligned to discard_sector_alignment). */
  async discard(ranges: readonly SectorRange[]): Promise<void> {
    await this.runner.run(this.planRangeCommand(BlkReq.DISCARD, 'discard', this.limits.discard, ranges, false));
  }

  /**
   * VIRTIO_BLK_T_WRITE_ZEROES over `ranges`; with `unmap` the device may deallocate them (reads
   * still return zeros). Options that are not an object, have a key other than `unmap`, or an
   * `unmap` that is not a boolean are refused with E_INVALID_ARGUMENT.
   */
  async writeZeroes(ranges: readonly SectorRange[], options: { unmap?: boolean } = {}): Promise<void> {
    options = optionsObject(options, 'writeZeroes options', WRITE_ZEROES_OPTION_KEYS);
    const unmap = optionalValue(flag(), options.unmap, 'writeZeroes unmap', 'true lets the device deallocate the ranges; false or leave it out') ?? false;
    await this.runner.run(this.planRangeCommand(BlkReq.WRITE_ZEROES, 'write zeroes', this.limits.writeZeroes, ranges, unmap));
  }

  /** Makes completed writes durable (VIRTIO_BLK_T_FLUSH); a no-op on a device without FLUSH. */
  async flush(): Promise<void> {
    if (!this.device.has(BlkFeature.FLUSH)) return;
    await this.runner.run([{ type: BlkReq.FLUSH, sector: 0, out: undefined, inBytes: 0, into: undefined, copyTo: undefined }]);
  }

  /** The device's id string (VIRTIO_BLK_T_GET_ID, up to 20 bytes, NUL-padded). */
  async getId(): Promise<string> {
    const [raw] = await this.runner.run([{ type: BlkReq.GET_ID, sector: 0, out: undefined, inBytes: BLK_ID_BYTES, into: undefined, copyTo: undefined }]);
    const end = raw!.indexOf(0);
    return new TextDecoder().decode(raw!.subarray(0, end < 0 ? BLK_ID_BYTES : end));
  }

  /** Checks a transfer against capacity and the logical block size, and cuts it into requests. */
  private planTransfer(type: number, sector: number, sectors: number, data: Uint8Array | undefined): Planned[] {
    this.checkRange(sector, sectors);
    this.checkWholeBlocks(sector, sectors);
    if (sectors * BLK_SECTOR_SIZE <= this.limits.maxTransfer) return [{ type, sector, out: data, inBytes: data ? 0 : sectors * BLK_SECTOR_SIZE, into: undefined, copyTo: undefined }];
    return splitTransfer(sector, sectors, this.limits.maxTransfer / BLK_SECTOR_SIZE).map((p) => ({
      type, sector: p.sector,
      out: data?.subarray(p.offset, p.offset + p.sectors * BLK_SECTOR_SIZE),
      inBytes: data ? 0 : p.sectors * BLK_SECTOR_SIZE,
      into: undefined,
      copyTo: undefined,
    }));
  }

  private planRangeCommand(type: number, what: string, limits: RangeLimits | undefined, ranges: readonly SectorRange[], unmap: boolean): Planned[] {
    if (!limits) {
      throw new RequestError('E_UNSUPPORTED', `${this.device.address} does not offer ${what} (VIRTIO_BLK_F_${type === BlkReq.DISCARD ? 'DISCARD' : 'WRITE_ZEROES'})`,
        type === BlkReq.DISCARD
          ? 'check blk.limits.discard before discarding (undefined: the device does not offer it; `uvirtio info` lists its features), or leave the sectors as they are'
          : 'write the zeroes with write() instead, or check blk.limits.writeZeroes first (undefined: the device does not offer it; `uvirtio info` lists its features)');
    }
    this.refuseIfReadOnly(what);
    const list = sectorRanges(ranges, what); // read once: the plan below uses these copies
    for (const r of list) {
      this.checkRange(r.sector, r.sectors);
      if (r.sector % limits.alignment !== 0 || r.sectors % limits.alignment !== 0) {
        throw new UsageError('E_INVALID_ARGUMENT', `${what} of sectors ${r.sector}+${r.sectors} is not aligned to ${limits.alignment} sectors (discard_sector_alignment)`);
      }
    }
    return planRanges(list, limits).map((segments) => ({ type, sector: 0, out: encodeRanges(segments, unmap), inBytes: 0, into: undefined, copyTo: undefined }));
  }

  /** Throws E_INVALID_ARGUMENT unless [sector, sector + sectors) is whole logical blocks (blk_size, virtio 1.2 §5.2.4). */
  private checkWholeBlocks(sector: number, sectors: number): void {
    const blockSectors = this.limits.blockSize / BLK_SECTOR_SIZE;
    if (sector % blockSectors !== 0 || sectors % blockSectors !== 0) {
      throw new UsageError('E_INVALID_ARGUMENT', `sectors ${sector}+${sectors} are not whole ${this.limits.blockSize}-byte logical blocks (blk_size)`,
        `align the start and the length to ${blockSectors} sectors`);
    }
  }

  private checkRange(sector: number, sectors: number): void {
    if (!Number.isSafeInteger(sector) || sector < 0 || !Number.isSafeInteger(sectors) || sectors < 1) {
      throw new UsageError('E_INVALID_ARGUMENT', `sector ${shown(sector)} and count ${shown(sectors)} must be non-negative integers (count ≥ 1)`,
        'sectors are 512-byte units given as JavaScript numbers (not bigint or strings)');
    }
    if (sector + sectors > this.limits.capacitySectors) {
      throw new RequestError('E_OUT_OF_RANGE', `sectors ${sector}..${sector + sectors - 1} are beyond the device's ${this.limits.capacitySectors}`,
        'the capacity is in 512-byte sectors');
    }
  }

  private refuseIfReadOnly(what: string): void {
    if (this.limits.readOnly) {
      throw new RequestError('E_READ_ONLY', `${this.device.address} is read-only (VIRTIO_BLK_F_RO): ${what} refused`,
        'check blk.readOnly before writing; to write, give the device a writable disk on its host side (QEMU: without readonly=on) and open it again');
    }
  }

  protected async shutDown(reason?: UvirtioError): Promise<void> {
    this.runner.closed = true;
    const error = reason ?? new UsageError('E_CLOSED', `${this.device.address}: the driver was closed with this request waiting`);
    this.pool.close(error);
    await this.queues.close(reason);
    // Only now that the device was reset can nothing write into the slots any more.
    this.pool.release(this.dma);
  }
}

// virtio-blk as a RAM disk (virtio 1.2 §5.2): IN, OUT, FLUSH, GET_ID and, where offered, DISCARD
// and WRITE_ZEROES; every other request type answers UNSUPP. A request is a 16-byte header
// (device-readable), data, and a status byte — the last device-writable byte (§5.2.6).
//
// The device is strict where a real one may be: it answers IOERR for a write to a read-only disk
// (§5.2.6.2), for more data segments than seg_max or a segment longer than size_max, for
// transfers not aligned to blk_size (as QEMU does with a larger logical block size), and for any
// request touching a sector the test marked as failing. It keeps a log of the requests it saw.

import {
  BLK_ID_BYTES, BLK_REQ_HEADER_LEN, BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkReq, BlkStatus, DeviceType, bit, BlkConfigExt,
} from '../../spec/index.js';
import { parseRanges, zeroRanges, type RangeLimits } from './blk-discard.js';
import { gather, putByte, scatter } from '../virtio/ring/chain-io.js';
import { DeviceConfigSpace, type ConfigField } from '../virtio/device-config.js';
import { BAD_BLK_STATUS, type ReplyFault } from '../virtio/faults.js';
import type { DeviceModel, Filled, ModelHost } from '../virtio/model.js';
import { badChain, dataView, regionByNumber, type Chain } from '../virtio/ring/chain.js';
import type { RuleId } from '../virtio/rules.js';

// struct virtio_blk_config (virtio 1.2 §5.2.4), field by field.
// Each field with the feature that makes it exist (§5.2.4, §2.5.1).
const BLK_CONFIG_FIELDS: readonly ConfigField[] = [
  { offset: BlkConfig.CAPACITY, size: 8 },
  { offset: BlkConfig.SIZE_MAX, size: 4, feature: BlkFeature.SIZE_MAX },
  { offset: BlkConfig.SEG_MAX, size: 4, feature: BlkFeature.SEG_MAX },
  { offset: BlkConfig.GEOMETRY, size: 2, feature: BlkFeature.GEOMETRY }, // cylinders
  { offset: BlkConfig.GEOMETRY + 2, size: 1, feature: BlkFeature.GEOMETRY }, // heads
  { offset: BlkConfig.GEOMETRY + 3, size: 1, feature: BlkFeature.GEOMETRY }, // sectors
  { offset: BlkConfig.BLK_SIZE, size: 4, feature: BlkFeature.BLK_SIZE },
  { offset: 24, size: 1, feature: BlkFeature.TOPOLOGY }, // topology.physical_block_exp
  { offset: 25, size: 1, feature: BlkFeature.TOPOLOGY }, // topology.alignment_offset
  { offset: 26, size: 2, feature: BlkFeature.TOPOLOGY }, // topology.min_io_size
  { offset: 28, size: 4, feature: BlkFeature.TOPOLOGY }, // topology.opt_io_size
  { offset: 32, size: 1, feature: BlkFeature.CONFIG_WCE }, // writeback
  { offset: 33, size: 1 }, // unused0
  { offset: BlkConfig.NUM_QUEUES, size: 2, feature: BlkFeature.MQ },
  { offset: BlkConfigExt.MAX_DISCARD_SECTORS, size: 4, feature: BlkFeature.DISCARD },
  { offset: BlkConfigExt.MAX_DISCARD_SEG, size: 4, feature: BlkFeature.DISCARD },
  { offset: BlkConfigExt.DISCARD_SECTOR_ALIGNMENT, size: 4, feature: BlkFeature.DISCARD },
  { offset: BlkConfigExt.MAX_WRITE_ZEROES_SECTORS, size: 4, feature: BlkFeature.WRITE_ZEROES },
  { offset: BlkConfigExt.MAX_WRITE_ZEROES_SEG, size: 4, feature: BlkFeature.WRITE_ZEROES },
  { offset: BlkConfigExt.WRITE_ZEROES_MAY_UNMAP, size: 1, feature: BlkFeature.WRITE_ZEROES },
];

/** How many of the most recent requests the log keeps (BlkModel.log). */
export const BLK_LOG_LENGTH = 8192;

/** One request as the device saw it. */
export interface BlkRequestRecord {
  /** The request queue it came on. */
  queue: number;
  /** The header's type: VIRTIO_BLK_T_IN 0, OUT 1, FLUSH 4, GET_ID 8, DISCARD 11, WRITE_ZEROES 13… (virtio 1.2 §5.2.6). */
  type: number;
  /** The header's sector, in 512-byte units whatever blk_size is. */
  sector: number;
  /** Descriptors besides the header and the status byte (§5.2.6: the data segments). */
  dataSegments: number;
  /** The longest of those, in bytes (0 without data). */
  largestSegment: number;
  /** The status byte it was answered with: OK 0, IOERR 1, UNSUPP 2 (or BAD_BLK_STATUS under that fault). */
  status: number;
}

export interface BlkModelOptions {
  capacitySectors: number;
  /** Backing bytes shared with another device (not copied); default a new zeroed disk. */
  storage?: Uint8Array;
  /** Request queues; MQ is offered when more than one. */
  queues: number;
  /** GET_ID answer: ASCII, at most 20 bytes. */
  serial: string;
  /** VIRTIO_BLK_F_RO: OUT, DISCARD and WRITE_ZEROES answer IOERR. */
  readOnly: boolean;
  /** blk_size, bytes: a power of two ≥ 512; transfers must be whole blocks. */
  blkSize: number;
  /** seg_max: data segments per request at most. */
  segMax: number;
  /** size_max: bytes per segment at most. */
  sizeMax: number;
  /** DISCARD offered with these limits, or not offered. */
  discard: RangeLimits | undefined;
  /** WRITE_ZEROES offered with these limits (alignment 1), or not offered. */
  writeZeroes: (RangeLimits & { mayUnmap: boolean }) | undefined;
  /** Sectors whose every request fails with IOERR (the test may change the set). */
  failSectors: Set<number>;
  /** Request types answered UNSUPP even when offered (the test may change the set). */
  unsupportedTypes: Set<number>;
}

export class BlkModel implements DeviceModel {
  readonly deviceType = DeviceType.BLK;
  readonly queueCount: number;
  readonly features: bigint;
  readonly config: DeviceConfigSpace;
  private readonly requestLog = new BlkRequestLog(BLK_LOG_LENGTH);
  private storage: Uint8Array;
  private readonly serial: Uint8Array;
  private readonly o: BlkModelOptions;
  private host: ModelHost | undefined;
  /** The request being carried out, for report (made once: no closure per request on the hot path). */
  private currentQueue = 0;
  private currentId = 0;
  private readonly report = (rule: RuleId, message: string): void => {
    this.host?.violation(rule, `blk request ${this.currentId}: ${message}`, this.currentQueue);
  };

  constructor(options: BlkModelOptions) {
    this.o = options;
    this.queueCount = options.queues;
    this.storage = options.storage ?? new Uint8Array(options.capacitySectors * BLK_SECTOR_SIZE);
    this.serial = new Uint8Array(BLK_ID_BYTES);
    this.serial.set(new TextEncoder().encode(options.serial).subarray(0, BLK_ID_BYTES));
    this.features = bit(BlkFeature.SIZE_MAX) | bit(BlkFeature.SEG_MAX) | bit(BlkFeature.BLK_SIZE) | bit(BlkFeature.FLUSH)
      | (options.queues > 1 ? bit(BlkFeature.MQ) : 0n)
      | (options.readOnly ? bit(BlkFeature.RO) : 0n)
      | (options.discard ? bit(BlkFeature.DISCARD) : 0n)
      | (options.writeZeroes ? bit(BlkFeature.WRITE_ZEROES) : 0n);
    // The discard / write-zeroes fields exist only on a device that offers one of them.
    const extended = options.discard !== undefined || options.writeZeroes !== undefined;
    this.config = new DeviceConfigSpace(extended ? BlkConfigExt.LEN : BlkConfig.LEN, BLK_CONFIG_FIELDS);
    this.config.setU64(BlkConfig.CAPACITY, BigInt(options.capacitySectors));
    this.config.setU32(BlkConfig.SIZE_MAX, options.sizeMax);
    this.config.setU32(BlkConfig.SEG_MAX, options.segMax);
    this.config.setU32(BlkConfig.BLK_SIZE, options.blkSize);
    this.config.setU16(BlkConfig.NUM_QUEUES, options.queues);
    if (options.discard) {
      this.config.setU32(BlkConfigExt.MAX_DISCARD_SECTORS, options.discard.maxSectors);
      this.config.setU32(BlkConfigExt.MAX_DISCARD_SEG, options.discard.maxSegments);
      this.config.setU32(BlkConfigExt.DISCARD_SECTOR_ALIGNMENT, options.discard.alignment);
    }
    if (options.writeZeroes) {
      this.config.setU32(BlkConfigExt.MAX_WRITE_ZEROES_SECTORS, options.writeZeroes.maxSectors);
      this.config.setU32(BlkConfigExt.MAX_WRITE_ZEROES_SEG, options.writeZeroes.maxSegments);
      this.config.setU8(BlkConfigExt.WRITE_ZEROES_MAY_UNMAP, options.writeZeroes.mayUnmap ? 1 : 0);
    }
  }

  /** The most recent requests (at most BLK_LOG_LENGTH), oldest first: a copy made on each call. */
  get log(): BlkRequestRecord[] {
    return this.requestLog.records();
  }

  /** The backing bytes, sector 0 first. */
  get disk(): Uint8Array {
    return this.storage;
  }

  get failSectors(): Set<number> {
    return this.o.failSectors;
  }

  get unsupportedTypes(): Set<number> {
    return this.o.unsupportedTypes;
  }

  attach(host: ModelHost): void {
    this.host = host;
  }

  /** Changes the capacity (keeping the data that still fits), as a resized backing file would. */
  resize(capacitySectors: number): void {
    const bigger = new Uint8Array(capacitySectors * BLK_SECTOR_SIZE);
    bigger.set(this.storage.subarray(0, bigger.length));
    this.storage = bigger;
    this.config.setU64(BlkConfig.CAPACITY, BigInt(capacitySectors));
    this.host?.configChanged();
  }

  fetchesRequests(): boolean {
    return true;
  }

  /**
   * One request (§5.2.6). Faults (virtio/faults.ts): used-len-short answers OK with len 1 and leaves the
   * data buffer untouched (len 0 without one); bad-blk-status carries the request out and writes
   * BAD_BLK_STATUS.
   */
  serve(q: number, chain: Chain, fault?: ReplyFault): number {
    const mem = this.requireHost().mem;
    if (chain.readableLen < BLK_REQ_HEADER_LEN || chain.writableLen < 1) {
      throw badChain(q, 'blk-request-malformed', `blk request ${chain.id} lacks the 16-byte header or the status byte (virtio 1.2 §5.2.6)`);
    }
    // The header: read in place when its first segment holds it all (the usual case), else gathered.
    const first = chain.readable[0]!;
    const r = first.len >= BLK_REQ_HEADER_LEN ? regionByNumber(mem, first.at, BLK_REQ_HEADER_LEN) : undefined;
    const header = r ? r.data : dataView(first.len >= BLK_REQ_HEADER_LEN ? mem.view(first.addr, BLK_REQ_HEADER_LEN) : gather(mem, chain.readable, 0, BLK_REQ_HEADER_LEN));
    const at = r ? first.at - r.start : 0;
    const type = header.getUint32(at, true);
    const sectorLo = header.getUint32(at + 8, true);
    const sectorHi = header.getUint32(at + 12, true);
    const sector = sectorLo === 0 && sectorHi === 0 ? 0n : (BigInt(sectorHi) << 32n) | BigInt(sectorLo);
    const dataIn = chain.writableLen - 1;
    // The data segments: every readable one after the header's, every writable one before the status byte's.
    const readable = chain.readable;
    const writable = chain.writable;
    const dataSegments = readable.length - 1 + writable.length - 1;
    let largestSegment = 0;
    for (let i = 1; i < readable.length; i++) largestSegment = Math.max(largestSegment, readable[i]!.len);
    for (let i = 0; i < writable.length - 1; i++) largestSegment = Math.max(largestSegment, writable[i]!.len);
    const overSegmented = dataSegments > this.o.segMax || largestSegment > this.o.sizeMax;
    const short = fault === 'used-len-short' && dataIn > 0;
    let status = short ? BlkStatus.OK : overSegmented ? BlkStatus.IOERR : this.execute(q, mem, chain, type, sector, dataIn);
    if (status !== BlkStatus.OK && dataIn > 0) scatter(mem, chain.writable, 0, new Uint8Array(dataIn));
    if (fault === 'bad-blk-status') status = BAD_BLK_STATUS;
    putByte(mem, chain.writable, dataIn, status);
    this.requestLog.record(q, type, sectorHi * 2 ** 32 + sectorLo, dataSegments, largestSegment, status);
    if (fault === 'used-len-short') return short ? 1 : 0;
    // Everything up to the status byte has been written (data, or zeros on error): §2.7.8 len.
    return chain.writableLen;
  }

  /** Both reply faults fit every blk request. */
  supportsReplyFault(): boolean {
    return true;
  }

  receive(): Filled[] {
    return [];
  }

  reset(): void {
    // The disk keeps its contents across a device reset, as a real disk does.
  }

  private execute(q: number, mem: ModelHost['mem'], chain: Chain, type: number, sector: bigint, dataIn: number): number {
    const dataOut = chain.readableLen - BLK_REQ_HEADER_LEN;
    this.currentQueue = q;
    this.currentId = chain.id;
    const report = this.report;
    if (this.o.unsupportedTypes.has(type)) return BlkStatus.UNSUPP;
    switch (type) {
      case BlkReq.IN: {
        const start = this.range(sector, dataIn, report);
        if (start === undefined) return BlkStatus.IOERR;
        scatter(mem, chain.writable, 0, this.storage.subarray(start, start + dataIn));
        return BlkStatus.OK;
      }
      case BlkReq.OUT: {
        const start = this.range(sector, dataOut, report);
        if (start === undefined || this.o.readOnly) return BlkStatus.IOERR;
        this.storage.set(gather(mem, chain.readable, BLK_REQ_HEADER_LEN, dataOut), start);
        return BlkStatus.OK;
      }
      case BlkReq.FLUSH:
        // §5.2.6.1: the driver sets sector to 0 (the device does not need it).
        if (sector !== 0n) report('blk-flush-sector', `FLUSH with sector ${sector}`);
        return BlkStatus.OK; // RAM is always stable
      case BlkReq.GET_ID:
        // §5.2.6.1: data is exactly 20 bytes; the id is NUL-padded.
        if (dataIn !== BLK_ID_BYTES) {
          report('blk-data-length', `GET_ID with ${dataIn} bytes of data, not ${BLK_ID_BYTES}`);
          return BlkStatus.IOERR;
        }
        scatter(mem, chain.writable, 0, this.serial);
        return BlkStatus.OK;
      case BlkReq.DISCARD:
      case BlkReq.WRITE_ZEROES: {
        const limits = type === BlkReq.DISCARD ? this.o.discard : this.o.writeZeroes;
        if (!limits) return BlkStatus.UNSUPP;
        const ranges = parseRanges(type, gather(mem, chain.readable, BLK_REQ_HEADER_LEN, dataOut), limits, this.capacity, report);
        if (typeof ranges === 'number') return ranges;
        if (this.o.readOnly || ranges.some((r) => this.failing(r.sector, r.sectors))) return BlkStatus.IOERR;
        zeroRanges(this.storage, ranges);
        return BlkStatus.OK;
      }
      default:
        return BlkStatus.UNSUPP;
    }
  }

  private get capacity(): number {
    return this.storage.length / BLK_SECTOR_SIZE;
  }

  /**
   * Byte offset of a transfer, or undefined when it is not whole logical blocks inside the disk,
   * or touches a failing sector. §5.2.6.1: the driver keeps IN/OUT data a multiple of 512 and
   * within capacity (recorded when it does not).
   */
  private range(sector: bigint, len: number, report: (rule: RuleId, message: string) => void): number | undefined {
    const block = this.o.blkSize;
    const offset = sector * BigInt(BLK_SECTOR_SIZE);
    if (len % BLK_SECTOR_SIZE !== 0) report('blk-data-length', `${len} bytes of data, not a multiple of ${BLK_SECTOR_SIZE}`);
    if (len % block !== 0 || offset % BigInt(block) !== 0n) return undefined;
    if (offset + BigInt(len) > BigInt(this.storage.length)) {
      report('blk-beyond-capacity', `sector ${sector} + ${len} bytes is beyond the capacity of ${this.capacity} sectors`);
      return undefined;
    }
    if (this.failing(Number(sector), len / BLK_SECTOR_SIZE)) return undefined;
    return Number(offset);
  }

  private failing(sector: number, sectors: number): boolean {
    for (const s of this.o.failSectors) if (s >= sector && s < sector + sectors) return true;
    return false;
  }

  private requireHost(): ModelHost {
    if (!this.host) throw new Error('BlkModel used before attach()');
    return this.host;
  }
}

/**
 * The request log as a ring of typed columns: recording a request stores six numbers and
 * allocates nothing (an object per request, kept until trimmed, was the reference device's
 * largest cost after the ring walk: young-generation garbage promoted to the old one, and a
 * write barrier per store; bench/README.md). Records are made only when someone reads the log.
 */
class BlkRequestLog {
  private readonly queue: Uint16Array;
  private readonly type: Uint32Array;
  private readonly sector: Float64Array;
  private readonly dataSegments: Uint32Array;
  private readonly largestSegment: Uint32Array;
  private readonly status: Uint8Array;
  /** Requests recorded since the device was made (the next one goes to slot total % capacity). */
  private total = 0;

  constructor(private readonly capacity: number) {
    this.queue = new Uint16Array(capacity);
    this.type = new Uint32Array(capacity);
    this.sector = new Float64Array(capacity);
    this.dataSegments = new Uint32Array(capacity);
    this.largestSegment = new Uint32Array(capacity);
    this.status = new Uint8Array(capacity);
  }

  record(queue: number, type: number, sector: number, dataSegments: number, largestSegment: number, status: number): void {
    const i = this.total % this.capacity;
    this.queue[i] = queue;
    this.type[i] = type;
    this.sector[i] = sector;
    this.dataSegments[i] = dataSegments;
    this.largestSegment[i] = largestSegment;
    this.status[i] = status;
    this.total++;
  }

  /** The kept requests, oldest first. */
  records(): BlkRequestRecord[] {
    const n = Math.min(this.total, this.capacity);
    const out: BlkRequestRecord[] = new Array(n);
    for (let k = 0; k < n; k++) {
      const i = (this.total - n + k) % this.capacity;
      out[k] = {
        queue: this.queue[i]!, type: this.type[i]!, sector: this.sector[i]!,
        dataSegments: this.dataSegments[i]!, largestSegment: this.largestSegment[i]!, status: this.status[i]!,
      };
    }
    return out;
  }
}

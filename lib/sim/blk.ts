// virtio-blk as a RAM disk (virtio 1.2 §5.2): IN, OUT, FLUSH and GET_ID; every other request type
// answers UNSUPP. A request is a 16-byte header (device-readable), data, and a status byte — the
// last device-writable byte (§5.2.6).

import {
  BLK_ID_BYTES, BLK_REQ_HEADER_LEN, BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkReq, BlkStatus, DeviceType, bit,
} from '../virtio/constants.js';
import { gather, scatter } from './chain-io.js';
import { DeviceConfigSpace, type ConfigField } from './device-config.js';
import type { DeviceModel, Filled, ModelHost } from './model.js';
import { badChain, type Chain } from './ring.js';

/** Largest single segment the device accepts (size_max), advertised with SIZE_MAX. */
const SIZE_MAX = 1 << 20;

// struct virtio_blk_config (virtio 1.2 §5.2.4), field by field.
const BLK_CONFIG_FIELDS: readonly ConfigField[] = [
  { offset: BlkConfig.CAPACITY, size: 8 },
  { offset: BlkConfig.SIZE_MAX, size: 4 },
  { offset: BlkConfig.SEG_MAX, size: 4 },
  { offset: BlkConfig.GEOMETRY, size: 2 }, // cylinders
  { offset: BlkConfig.GEOMETRY + 2, size: 1 }, // heads
  { offset: BlkConfig.GEOMETRY + 3, size: 1 }, // sectors
  { offset: BlkConfig.BLK_SIZE, size: 4 },
  { offset: 24, size: 1 }, // topology.physical_block_exp
  { offset: 25, size: 1 }, // topology.alignment_offset
  { offset: 26, size: 2 }, // topology.min_io_size
  { offset: 28, size: 4 }, // topology.opt_io_size
  { offset: 32, size: 1 }, // writeback
  { offset: 33, size: 1 }, // unused0
  { offset: BlkConfig.NUM_QUEUES, size: 2 },
];

export interface BlkModelOptions {
  capacitySectors: number;
  /** Request queues; MQ is offered when more than one. */
  queues: number;
  /** The largest queue size, from which seg_max follows (header and status take two descriptors). */
  queueMaxSize: number;
  /** GET_ID answer: ASCII, at most 20 bytes. */
  serial: string;
}

export class BlkModel implements DeviceModel {
  readonly deviceType = DeviceType.BLK;
  readonly queueCount: number;
  readonly features: bigint;
  readonly config = new DeviceConfigSpace(BlkConfig.LEN, BLK_CONFIG_FIELDS);
  private storage: Uint8Array;
  private readonly serial: Uint8Array;
  private host: ModelHost | undefined;

  constructor(options: BlkModelOptions) {
    this.queueCount = options.queues;
    this.storage = new Uint8Array(options.capacitySectors * BLK_SECTOR_SIZE);
    this.serial = new Uint8Array(BLK_ID_BYTES);
    this.serial.set(new TextEncoder().encode(options.serial).subarray(0, BLK_ID_BYTES));
    this.features = bit(BlkFeature.SIZE_MAX) | bit(BlkFeature.SEG_MAX) | bit(BlkFeature.BLK_SIZE) | bit(BlkFeature.FLUSH)
      | (options.queues > 1 ? bit(BlkFeature.MQ) : 0n);
    this.config.setU64(BlkConfig.CAPACITY, BigInt(options.capacitySectors));
    this.config.setU32(BlkConfig.SIZE_MAX, SIZE_MAX);
    this.config.setU32(BlkConfig.SEG_MAX, options.queueMaxSize - 2);
    this.config.setU32(BlkConfig.BLK_SIZE, BLK_SECTOR_SIZE);
    this.config.setU16(BlkConfig.NUM_QUEUES, options.queues);
  }

  /** The backing bytes, sector 0 first. */
  get disk(): Uint8Array {
    return this.storage;
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

  serve(q: number, chain: Chain): number {
    const mem = this.requireHost().mem;
    if (chain.readableLen < BLK_REQ_HEADER_LEN || chain.writableLen < 1) {
      throw badChain(q, `blk request ${chain.id} lacks the 16-byte header or the status byte (virtio 1.2 §5.2.6)`);
    }
    const header = new DataView(gather(mem, chain.readable, 0, BLK_REQ_HEADER_LEN).buffer);
    const type = header.getUint32(0, true);
    const sector = header.getBigUint64(8, true);
    const dataIn = chain.writableLen - 1;
    let status: number;
    switch (type) {
      case BlkReq.IN:
        status = this.read(mem, chain, sector, dataIn);
        break;
      case BlkReq.OUT:
        status = this.write(mem, chain, sector, chain.readableLen - BLK_REQ_HEADER_LEN);
        break;
      case BlkReq.FLUSH:
        status = BlkStatus.OK; // RAM is always stable
        break;
      case BlkReq.GET_ID:
        // §5.2.6.1: data is exactly 20 bytes; the id is NUL-padded.
        status = dataIn === BLK_ID_BYTES ? BlkStatus.OK : BlkStatus.IOERR;
        scatter(mem, chain.writable, 0, status === BlkStatus.OK ? this.serial : new Uint8Array(dataIn));
        break;
      default:
        status = BlkStatus.UNSUPP;
    }
    scatter(mem, chain.writable, dataIn, Uint8Array.of(status));
    // Everything up to the status byte has been written (data, or zeros on error): §2.7.8 len.
    return chain.writableLen;
  }

  receive(): Filled[] {
    return [];
  }

  reset(): void {
    // The disk keeps its contents across a device reset, as a real disk does.
  }

  private read(mem: ModelHost['mem'], chain: Chain, sector: bigint, len: number): number {
    const start = this.range(sector, len);
    scatter(mem, chain.writable, 0, start === undefined ? new Uint8Array(len) : this.storage.subarray(start, start + len));
    return start === undefined ? BlkStatus.IOERR : BlkStatus.OK;
  }

  private write(mem: ModelHost['mem'], chain: Chain, sector: bigint, len: number): number {
    const start = this.range(sector, len);
    if (start === undefined) return BlkStatus.IOERR;
    this.storage.set(gather(mem, chain.readable, BLK_REQ_HEADER_LEN, len), start);
    return BlkStatus.OK;
  }

  /** Byte offset of a transfer, or undefined when it is not whole sectors inside the disk. */
  private range(sector: bigint, len: number): number | undefined {
    if (len % BLK_SECTOR_SIZE !== 0) return undefined;
    const end = sector * BigInt(BLK_SECTOR_SIZE) + BigInt(len);
    if (end > BigInt(this.storage.length)) return undefined;
    return Number(sector) * BLK_SECTOR_SIZE;
  }

  private requireHost(): ModelHost {
    if (!this.host) throw new Error('BlkModel used before attach()');
    return this.host;
  }
}

// virtio-blk driver (virtio 1.2 §5.2) on VirtioDevice: read, write, flush, get-id, with a bounded
// queue depth and back-pressure, in interrupt or polling mode, and taking part in stop/reinit.
//
// A request is three pieces of DMA memory in one slot: the 16-byte header (device-readable), the
// data (readable for OUT, writable for IN), and the status byte (device-writable, last).

import {
  BLK_ID_BYTES, BLK_REQ_HEADER_LEN, BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkReq, BlkStatus, DeviceType,
} from '../../lib/virtio/constants.js';
import { DeviceError, RequestError, UsageError } from '../../lib/virtio/errors.js';
import { VirtioDevice, type OpenOptions } from '../../lib/virtio/device.js';
import { StatefulDriver } from '../stateful.js';
import type { RequestQueue } from '../../lib/virtio/requests.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import type { Layout, Segment } from '../../lib/virtio/queue/types.js';
import type { VirtioTransport } from '../../lib/transport/types.js';

export interface BlkOpenOptions extends Omit<OpenOptions, 'features'> {
  layout?: Layout | 'auto';
  indirect?: boolean;
  eventIdx?: boolean;
  /** Ring size (default: the device's maximum, at most 256). */
  queueSize?: number;
  /** Requests in flight at most (default 32); more wait their turn. */
  depth?: number;
  /** Largest transfer of one request in bytes (default 64 KiB; a multiple of 512). */
  maxTransfer?: number;
}

const STATUS_OFFSET = BLK_REQ_HEADER_LEN;
const DATA_OFFSET = 64;

interface Slot {
  region: DmaRegion;
  view: DataView;
}

export class BlkDriver extends StatefulDriver {
  readonly capacitySectors: number;
  readonly readOnly: boolean;
  readonly maxTransfer: number;
  private readonly rq: RequestQueue<undefined>;
  private readonly free: Slot[] = [];
  private readonly slotWaiters: ((s: Slot) => void)[] = [];
  private closed = false;

  private constructor(device: VirtioDevice, queues: QueueSet, slots: Slot[], maxTransfer: number) {
    super(device, queues);
    this.rq = queues.get(0) as RequestQueue<undefined>;
    this.free = slots;
    this.maxTransfer = maxTransfer;
    this.capacitySectors = Number(device.transport.readConfig64(BlkConfig.CAPACITY));
    this.readOnly = device.has(BlkFeature.RO);
  }

  static async open(transport: VirtioTransport, options: BlkOpenOptions = {}): Promise<BlkDriver> {
    if (transport.deviceType !== DeviceType.BLK) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not blk (2)`);
    }
    const maxTransfer = options.maxTransfer ?? 64 * 1024;
    if (!Number.isInteger(maxTransfer) || maxTransfer < BLK_SECTOR_SIZE || maxTransfer % BLK_SECTOR_SIZE !== 0) {
      throw new UsageError('E_INVALID_ARGUMENT', `maxTransfer must be a positive multiple of ${BLK_SECTOR_SIZE}, got ${maxTransfer}`);
    }
    const depth = options.depth ?? 32;
    if (!Number.isInteger(depth) || depth < 1 || depth > 4096) {
      throw new UsageError('E_INVALID_ARGUMENT', `depth must be 1 to 4096, got ${depth}`);
    }
    const device = await VirtioDevice.open(transport, {
      ...options,
      features: {
        optional: [BlkFeature.FLUSH, BlkFeature.RO, BlkFeature.BLK_SIZE, BlkFeature.SEG_MAX, BlkFeature.SIZE_MAX],
        layout: options.layout ?? 'auto', indirect: options.indirect ?? true, eventIdx: options.eventIdx ?? true,
      },
    });
    try {
      const max = transport.queueMaxSize(0);
      const queues = new QueueSet(device);
      queues.add(0, { size: options.queueSize ?? Math.min(max, 256) });
      device.driverOk();
      const slots: Slot[] = [];
      for (let i = 0; i < depth; i++) {
        const region = transport.dma.alloc(DATA_OFFSET + maxTransfer, 4096);
        slots.push({ region, view: new DataView(region.bytes.buffer, region.bytes.byteOffset, region.size) });
      }
      return new BlkDriver(device, queues, slots, maxTransfer);
    } catch (e) {
      await device.close();
      throw e;
    }
  }

  /** The request queue (for batch submission and statistics). */
  get requests(): RequestQueue<undefined> {
    return this.rq;
  }

  /** Reads `sectors` sectors from `sector`. */
  async read(sector: number, sectors: number): Promise<Uint8Array> {
    const bytes = this.checkRange(sector, sectors);
    const slot = await this.takeSlot();
    try {
      await this.submit(slot, BlkReq.IN, sector, [], [{ addr: slot.region.iova + BigInt(DATA_OFFSET), len: bytes }]);
      return slot.region.bytes.slice(DATA_OFFSET, DATA_OFFSET + bytes);
    } finally {
      this.giveSlot(slot);
    }
  }

  /** Writes `data` (a whole number of sectors) at `sector`. */
  async write(sector: number, data: Uint8Array): Promise<void> {
    if (data.length % BLK_SECTOR_SIZE !== 0 || data.length === 0) {
      throw new UsageError('E_INVALID_ARGUMENT', `write length ${data.length} is not a positive multiple of ${BLK_SECTOR_SIZE}`);
    }
    if (this.readOnly) throw new RequestError('E_READ_ONLY', `${this.device.address} is read-only (VIRTIO_BLK_F_RO)`);
    const bytes = this.checkRange(sector, data.length / BLK_SECTOR_SIZE);
    const slot = await this.takeSlot();
    try {
      slot.region.bytes.set(data, DATA_OFFSET);
      await this.submit(slot, BlkReq.OUT, sector, [{ addr: slot.region.iova + BigInt(DATA_OFFSET), len: bytes }], []);
    } finally {
      this.giveSlot(slot);
    }
  }

  /** Makes completed writes durable (VIRTIO_BLK_T_FLUSH); a no-op on a device without FLUSH. */
  async flush(): Promise<void> {
    if (!this.device.has(BlkFeature.FLUSH)) return;
    const slot = await this.takeSlot();
    try {
      await this.submit(slot, BlkReq.FLUSH, 0, [], []);
    } finally {
      this.giveSlot(slot);
    }
  }

  /** The device's id string (VIRTIO_BLK_T_GET_ID, up to 20 bytes, NUL-padded). */
  async getId(): Promise<string> {
    const slot = await this.takeSlot();
    try {
      await this.submit(slot, BlkReq.GET_ID, 0, [], [{ addr: slot.region.iova + BigInt(DATA_OFFSET), len: BLK_ID_BYTES }]);
      const raw = slot.region.bytes.subarray(DATA_OFFSET, DATA_OFFSET + BLK_ID_BYTES);
      const end = raw.indexOf(0);
      return new TextDecoder().decode(raw.subarray(0, end < 0 ? BLK_ID_BYTES : end));
    } finally {
      this.giveSlot(slot);
    }
  }

  private checkRange(sector: number, sectors: number): number {
    if (!Number.isSafeInteger(sector) || sector < 0 || !Number.isSafeInteger(sectors) || sectors < 1) {
      throw new UsageError('E_INVALID_ARGUMENT', `sector ${sector} and count ${sectors} must be non-negative integers (count ≥ 1)`);
    }
    if (sector + sectors > this.capacitySectors) {
      throw new RequestError('E_OUT_OF_RANGE', `sectors ${sector}..${sector + sectors - 1} are beyond the device's ${this.capacitySectors}`,
        'the capacity is in 512-byte sectors');
    }
    const bytes = sectors * BLK_SECTOR_SIZE;
    if (bytes > this.maxTransfer) {
      throw new UsageError('E_INVALID_ARGUMENT', `${bytes} bytes is more than the ${this.maxTransfer}-byte maxTransfer of one request`);
    }
    return bytes;
  }

  private async submit(slot: Slot, type: number, sector: number, readable: Segment[], writable: Segment[]): Promise<void> {
    slot.view.setUint32(0, type, true);
    slot.view.setUint32(4, 0, true);
    slot.view.setBigUint64(8, BigInt(sector), true);
    slot.view.setUint8(STATUS_OFFSET, 0xff); // not a status the device can leave by accident
    const header = { addr: slot.region.iova, len: BLK_REQ_HEADER_LEN };
    const status = { addr: slot.region.iova + BigInt(STATUS_OFFSET), len: 1 };
    const done = await this.rq.submit([header, ...readable], [...writable, status]);
    const expected = writable.reduce((n, s) => n + s.len, 0) + 1;
    const code = slot.view.getUint8(STATUS_OFFSET);
    if (code === BlkStatus.OK && done.len >= 1) return;
    if (code === BlkStatus.UNSUPP) {
      throw new RequestError('E_UNSUPPORTED', `${this.device.address} does not support request type ${type}`);
    }
    throw new RequestError('E_IO_ERROR', `${this.device.address}: request type ${type} at sector ${sector} failed (status ${code}, ${done.len} of ${expected} bytes)`,
      'the device reported an I/O error');
  }

  private takeSlot(): Promise<Slot> {
    if (this.closed) return Promise.reject(new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`));
    const s = this.free.pop();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  private giveSlot(s: Slot): void {
    const next = this.slotWaiters.shift();
    if (next) next(s);
    else this.free.push(s);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queues.close();
    for (const s of this.free) this.device.transport.dma.free(s.region);
    await this.device.close();
  }
}

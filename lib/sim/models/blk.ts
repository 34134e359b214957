// virtio-blk in the reference device (virtio 1.2 §5.2): its options, its address options
// (sim:blk?queues=4&ro=1…), its handle, and how it builds its model — a RAM disk, blk-model.ts.
// Registered with one line in lib/sim/models/index.ts; its driver is drivers/blk/.

import { BLK_SECTOR_SIZE, DeviceType } from '../../spec/index.js';
import { UsageError } from '../../errors.js';
import { checkValue, flag, int, optionsObject, type OptionValues } from '../../util/options.js';
import { SimDeviceHandle, positiveInt, type SimCommonOptions, type SimDevice, type SimModelType } from '../common.js';
import type { SimPciFunction } from '../pci/function.js';
import { BlkModel, type BlkRequestRecord } from './blk-model.js';

/** createSimDevice({ type: 'blk', … }). */
export interface SimBlkOptions extends SimCommonOptions {
  /** Selects virtio-blk (device id 2, virtio 1.2 §5.2). */
  type: 'blk';
  /** Request queues (default 1); MQ and num_queues are offered when more than one. */
  queues?: number;
  /** Disk size in 512-byte sectors (default 2048 — or diskFrom's length, rounded up to a sector). */
  capacitySectors?: number;
  /** Initial disk contents, copied (e.g. a migration source's `disk`, modelling shared storage). */
  diskFrom?: Uint8Array;
  /**
   * The disk IS this array (not a copy): two devices on one backing store, as two daemons serving
   * one image. A migration target shares the source's disk this way. Capacity follows its length.
   */
  sharedDisk?: Uint8Array;
  /** The GET_ID answer, up to 20 ASCII bytes (default "uvirtio-sim"). */
  serial?: string;
  /** VIRTIO_BLK_F_RO: writes, discards and write-zeroes answer IOERR (default false). */
  readOnly?: boolean;
  /** blk_size in bytes, a power of two from 512 to 65536 (default 512); transfers must be whole blocks. */
  blkSize?: number;
  /** seg_max: data segments per request at most (default queueMaxSize − 2). */
  segMax?: number;
  /** size_max: bytes per segment at most (default 1 MiB). */
  sizeMax?: number;
  /** Offers VIRTIO_BLK_F_DISCARD with these limits (each defaulted). */
  discard?: {
    /** max_discard_sectors: 512-byte sectors per range at most (default 8192, virtio 1.2 §5.2.4). */
    maxSectors?: number;
    /** max_discard_seg: ranges per DISCARD request at most (default 16). */
    maxSegments?: number;
    /** discard_sector_alignment in 512-byte sectors: each range starts and ends on it, else IOERR (default 1). */
    alignment?: number;
  };
  /** Offers VIRTIO_BLK_F_WRITE_ZEROES with these limits (each defaulted; mayUnmap default true). */
  writeZeroes?: {
    /** max_write_zeroes_sectors: 512-byte sectors per range at most (default 8192, virtio 1.2 §5.2.4). */
    maxSectors?: number;
    /** max_write_zeroes_seg: ranges per WRITE_ZEROES request at most (default 16). */
    maxSegments?: number;
    /** write_zeroes_may_unmap: the device may deallocate the zeroed sectors (default true). */
    mayUnmap?: boolean;
  };
  /** Sectors whose requests fail with IOERR (also settable later through `failSectors`). */
  failSectors?: readonly number[];
  /** Request types answered UNSUPP even when offered (also settable later through `unsupportedTypes`). */
  unsupportedTypes?: readonly number[];
}

/** The handle of a reference virtio-blk. */
export interface SimBlkDevice extends SimDevice {
  /** Always 'blk': narrows an AnySimDevice. */
  readonly type: 'blk';
  /** The disk's bytes (a new array after resize()). */
  readonly disk: Uint8Array;
  /** Changes the capacity: a config change (config_generation, config interrupt). */
  resize(capacitySectors: number): void;
  /** Sectors whose requests answer IOERR; add and delete to inject and clear faults. */
  readonly failSectors: Set<number>;
  /** Request types answered UNSUPP; add and delete to inject and clear faults. */
  readonly unsupportedTypes: Set<number>;
  /** The most recent requests the device saw (type, sector, data segments, status), at most BLK_LOG_LENGTH (8192), oldest first: a new array on each read (the device keeps them in typed columns). */
  readonly requests: readonly BlkRequestRecord[];
}

/** blk_size: a power of two from 512 to 65536 (§5.2.4). */
const BLK_SIZE = int(BLK_SECTOR_SIZE, 65536, { powerOfTwo: true });
/** Largest segment (size_max) by default. */
const DEFAULT_SIZE_MAX = 1 << 20;
/** Default discard / write-zeroes limits: sectors per segment and segments per request. */
const DEFAULT_RANGE_SECTORS = 8192;
const DEFAULT_RANGE_SEGMENTS = 16;

/** sim:blk?… options (besides the common ones, lib/sim/open.ts). */
const ADDRESS_OPTIONS = {
  queues: int(1, 64), capacity: int(1, 1 << 22), ro: flag(), discard: flag(), writezeroes: flag(),
  blksize: BLK_SIZE, segmax: int(1, 32768), sizemax: int(512, 2 ** 30),
};

/** virtio-blk as the reference device's registry (models/index.ts) knows it. */
export const blk: SimModelType<SimBlkOptions, SimBlkDevice> = {
  name: 'blk',
  deviceId: DeviceType.BLK,
  /** Mass storage / SCSI, as QEMU's virtio-blk-pci. */
  classCode: 0x010000,
  optionKeys: {
    queues: true, capacitySectors: true, diskFrom: true, sharedDisk: true, serial: true, readOnly: true, blkSize: true, segMax: true, sizeMax: true,
    discard: true, writeZeroes: true, failSectors: true, unsupportedTypes: true,
  },
  addressOptions: ADDRESS_OPTIONS,
  fromAddress: (v: OptionValues<typeof ADDRESS_OPTIONS>, source) => ({
    ...(v.queues !== undefined ? { queues: v.queues } : {}),
    ...(v.capacity !== undefined ? { capacitySectors: v.capacity } : {}),
    // A migration target reaches the same storage, as a second daemon on the same image would.
    ...(source instanceof SimBlkHandle ? { sharedDisk: source.disk } : {}),
    readOnly: v.ro ?? false,
    ...(v.discard ? { discard: {} } : {}),
    ...(v.writezeroes ? { writeZeroes: {} } : {}),
    ...(v.blksize !== undefined ? { blkSize: v.blksize } : {}),
    ...(v.segmax !== undefined ? { segMax: v.segmax } : {}),
    ...(v.sizemax !== undefined ? { sizeMax: v.sizemax } : {}),
  }),
  create: (options, queueMaxSize) => {
    const model = blkModel(options, queueMaxSize);
    return { model, handle: (fn) => new SimBlkHandle(fn, model) };
  },
};

function blkModel(options: SimBlkOptions, queueMaxSize: number): BlkModel {
  const from = options.diskFrom;
  const shared = options.sharedDisk;
  if (shared && (from || shared.length === 0 || shared.length % BLK_SECTOR_SIZE !== 0)) {
    throw new UsageError('E_INVALID_ARGUMENT', 'sharedDisk must be a whole number of sectors, and excludes diskFrom');
  }
  const defaultSectors = shared ? shared.length / BLK_SECTOR_SIZE : from ? Math.max(1, Math.ceil(from.length / BLK_SECTOR_SIZE)) : 2048;
  const capacitySectors = positiveInt(options.capacitySectors ?? defaultSectors, 'capacitySectors');
  if (from && from.length > capacitySectors * BLK_SECTOR_SIZE) {
    throw new UsageError('E_INVALID_ARGUMENT', `diskFrom has ${from.length} bytes, more than ${capacitySectors} sectors`);
  }
  const blkSize = checkValue(BLK_SIZE, options.blkSize ?? BLK_SECTOR_SIZE, 'blkSize');
  const d = options.discard === undefined ? undefined : optionsObject(options.discard, 'createSimDevice discard', { maxSectors: true, maxSegments: true, alignment: true });
  const wz = options.writeZeroes === undefined ? undefined : optionsObject(options.writeZeroes, 'createSimDevice writeZeroes', { maxSectors: true, maxSegments: true, mayUnmap: true });
  if (shared && capacitySectors * BLK_SECTOR_SIZE !== shared.length) {
    throw new UsageError('E_INVALID_ARGUMENT', `capacitySectors ${capacitySectors} differs from the shared disk's ${shared.length / BLK_SECTOR_SIZE}`);
  }
  const model = new BlkModel({
    capacitySectors,
    ...(shared ? { storage: shared } : {}),
    queues: positiveInt(options.queues ?? 1, 'queues'),
    serial: options.serial ?? 'uvirtio-sim',
    readOnly: options.readOnly ?? false,
    blkSize,
    segMax: positiveInt(options.segMax ?? Math.max(1, queueMaxSize - 2), 'segMax'),
    sizeMax: positiveInt(options.sizeMax ?? DEFAULT_SIZE_MAX, 'sizeMax'),
    discard: d && {
      maxSectors: positiveInt(d.maxSectors ?? DEFAULT_RANGE_SECTORS, 'discard.maxSectors'),
      maxSegments: positiveInt(d.maxSegments ?? DEFAULT_RANGE_SEGMENTS, 'discard.maxSegments'),
      alignment: positiveInt(d.alignment ?? 1, 'discard.alignment'),
    },
    writeZeroes: wz && {
      maxSectors: positiveInt(wz.maxSectors ?? DEFAULT_RANGE_SECTORS, 'writeZeroes.maxSectors'),
      maxSegments: positiveInt(wz.maxSegments ?? DEFAULT_RANGE_SEGMENTS, 'writeZeroes.maxSegments'),
      alignment: 1,
      mayUnmap: wz.mayUnmap ?? true,
    },
    failSectors: new Set(options.failSectors ?? []),
    unsupportedTypes: new Set(options.unsupportedTypes ?? []),
  });
  if (from) model.disk.set(from);
  return model;
}

class SimBlkHandle extends SimDeviceHandle implements SimBlkDevice {
  readonly type = 'blk';
  constructor(fn: SimPciFunction, private readonly model: BlkModel) {
    super(fn);
  }
  get disk(): Uint8Array {
    return this.model.disk;
  }
  resize(capacitySectors: number): void {
    this.model.resize(positiveInt(capacitySectors, 'capacitySectors'));
  }
  get failSectors(): Set<number> {
    return this.model.failSectors;
  }
  get unsupportedTypes(): Set<number> {
    return this.model.unsupportedTypes;
  }
  get requests(): readonly BlkRequestRecord[] {
    return this.model.log;
  }
}

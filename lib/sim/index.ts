// The reference device: `createSimDevice({ type: 'blk' })` gives an in-process virtio-pci function
// (the CLI's `sim:blk` / `sim:net` / `sim:rng`) and the controls a test needs — completion timing, fault
// injection, notification suppression, statistics — plus the memory it shares with the driver.
// With `state` it offers the proposal's STOP + virtqueue state (RING_STATE), the DEVICE_STATE
// mailbox and virtio 1.4 SUSPEND (SPEC-NOTES §1–§2).
//
// It is a strict device: `violations` lists every driver rule broken (rules.ts), `failure` says why
// it set DEVICE_NEEDS_RESET. `injectFault` makes it misbehave (faults.ts); `clearFaults` undoes it.

import { HeapDmaAllocator } from '../mem/dma.js';
import { BLK_SECTOR_SIZE, COMMON_CFG_EXT_LEN, COMMON_CFG_LEN, Feature, bit } from '../spec/index.js';
import { UsageError } from '../errors.js';
import { BlkModel, type BlkRequestRecord } from './blk.js';
import type { QuietPhase } from './common-cfg.js';
import type { Completion, SimStats, StopMode } from './device.js';
import type { SimFault } from './faults.js';
import { SimPciFunction } from './function.js';
import type { DeviceModel } from './model.js';
import { NetModel } from './net.js';
import { MAX_MSIX_VECTORS } from './pci-config.js';
import { RngModel } from './rng.js';
import type { Violation } from './rules.js';

export type { Completion, SimStats, StopMode } from './device.js';
export { BAD_BLK_STATUS, FAULT_KINDS, SHORT_NET_RX_LEN, type FaultKind, type SimFault } from './faults.js';
export { RULES, RULE_GROUPS, type Rule, type RuleAction, type RuleGroup, type RuleId, type Violation } from './rules.js';
export type { QuietPhase } from './common-cfg.js';
export { DEVICE_STATE_MAGIC, DEVICE_STATE_VERSION, decodeDeviceState, encodeDeviceState, type HeldRequest } from './device-state.js';
export type { UsedFault } from './ring.js';
export type { BlkRequestRecord } from './blk.js';
export { SimPciFunction } from './function.js';

/** Transport features the device offers besides VERSION_1 (always offered). */
export interface SimOffer {
  /** VIRTIO_F_RING_PACKED (default true). */
  packed?: boolean;
  /** VIRTIO_F_INDIRECT_DESC (default true). */
  indirect?: boolean;
  /** VIRTIO_F_EVENT_IDX (default true). */
  eventIdx?: boolean;
  /** VIRTIO_F_ACCESS_PLATFORM (default true): the device uses IOVAs, which it does. */
  accessPlatform?: boolean;
}

/** The stop/state facilities the device offers (each default false). */
export interface SimStateOffer {
  /** VIRTIO_F_RING_STATE (PROVISIONAL 44): the STOP status bit and the per-queue state registers. */
  ringState?: boolean;
  /** VIRTIO_F_DEVICE_STATE (PROVISIONAL 45): the mailbox for held requests. Only with ringState; defaults to it. */
  deviceState?: boolean;
  /** VIRTIO_F_SUSPEND (virtio 1.4, 43): the two-way SUSPEND status bit. */
  suspend?: boolean;
}

interface CommonOptions {
  /** Largest queue size the device allows (default 256; at most 32768, a power of two). */
  queueMaxSize?: number;
  offer?: SimOffer;
  /** Default 'immediate'. */
  completion?: Completion;
  /** MSI-X table size (default: one per queue plus one for configuration changes). */
  msixVectors?: number;
  /**
   * Memory shared with the driver (default: a new HeapDmaAllocator, closed with the function).
   * One passed in is never closed by the device: a second device on the same memory (a migration
   * target) survives the first one's close().
   */
  dma?: HeapDmaAllocator;
  state?: SimStateOffer;
  /** What STOP does with fetched, unfinished requests (default 'drain'); SUSPEND always drains. */
  mode?: StopMode;
}

export interface SimBlkOptions extends CommonOptions {
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
  discard?: { maxSectors?: number; maxSegments?: number; alignment?: number };
  /** Offers VIRTIO_BLK_F_WRITE_ZEROES with these limits (each defaulted; mayUnmap default true). */
  writeZeroes?: { maxSectors?: number; maxSegments?: number; mayUnmap?: boolean };
  /** Sectors whose requests fail with IOERR (also settable later through `failSectors`). */
  failSectors?: readonly number[];
  /** Request types answered UNSUPP even when offered (also settable later through `unsupportedTypes`). */
  unsupportedTypes?: readonly number[];
}

export interface SimNetOptions extends CommonOptions {
  type: 'net';
  /** "52:54:00:12:34:56" (the default) or 6 bytes. */
  mac?: string | Uint8Array;
  /** max_virtqueue_pairs; when given the device offers CTRL_VQ and MQ (default: one pair, no control queue). */
  queuePairs?: number;
  /** Offers VIRTIO_NET_F_MRG_RXBUF (default false). */
  mergeable?: boolean;
  /** Joins the cable to another reference NIC: frames sent on one arrive at the other (default: loopback). */
  peer?: SimNetDevice;
}

export interface SimRngOptions extends CommonOptions {
  type: 'rng';
  /** A seed for a repeatable byte stream (default: crypto randomness). */
  seed?: number;
}

export interface SimDevice {
  readonly fn: SimPciFunction;
  readonly dma: HeapDmaAllocator;
  /** Completes every request held in flight (manual or latency completion); returns how many. */
  completeNow(): number;
  /** Requests fetched from the rings and not yet completed. */
  readonly held: number;
  readonly stats: SimStats;
  /** Makes the device misbehave: now, on its next used elements, or until clearFaults() (faults.ts). */
  injectFault(fault: SimFault): void;
  /** Back to normal: pending faults dropped, a stuck reset completes, a held-back STOP / SUSPEND shows. */
  clearFaults(): void;
  /** Every driver rule broken since the device was made, one entry per rule and queue (rules.ts). */
  readonly violations: readonly Violation[];
  /** Forgets the violations recorded so far. */
  clearViolations(): void;
  /** Asks the driver not to notify queue `q` (a polling device) or, with false, to notify again. */
  suppressNotifications(q: number, suppressed: boolean): void;
  /** Why the device set DEVICE_NEEDS_RESET, until the driver resets it. */
  readonly failure: Error | undefined;
  /** Running, or on its way to / in STOP or SUSPEND. */
  readonly phase: QuietPhase;
  /** Why the last DEVICE_STATE command was refused (CMD read its code), until the next command or reset. */
  readonly stateRefusal: string | undefined;
}

export interface SimBlkDevice extends SimDevice {
  readonly type: 'blk';
  /** The disk's bytes (a new array after resize()). */
  readonly disk: Uint8Array;
  /** Changes the capacity: a config change (config_generation, config interrupt). */
  resize(capacitySectors: number): void;
  /** Sectors whose requests answer IOERR; add and delete to inject and clear faults. */
  readonly failSectors: Set<number>;
  /** Request types answered UNSUPP; add and delete to inject and clear faults. */
  readonly unsupportedTypes: Set<number>;
  /** The most recent requests the device saw (type, sector, data segments, status), oldest first. */
  readonly requests: readonly BlkRequestRecord[];
}

export interface SimNetDevice extends SimDevice {
  readonly type: 'net';
  readonly mac: Uint8Array;
  /** Frames dropped (link down, or a receive buffer too small). */
  readonly dropped: number;
  /** Sets the link status bit: a config change. */
  setLinkUp(up: boolean): void;
  /** Queue pairs in use: 1 until the driver's VQ_PAIRS_SET. */
  readonly activePairs: number;
}

export interface SimRngDevice extends SimDevice {
  readonly type: 'rng';
  /** Bytes of entropy handed out. */
  readonly delivered: number;
}

export type SimOptions = SimBlkOptions | SimNetOptions | SimRngOptions;
export type AnySimDevice = SimBlkDevice | SimNetDevice | SimRngDevice;

/** PCI class codes: mass storage / SCSI (as QEMU's virtio-blk-pci), network / Ethernet. */
const CLASS_STORAGE = 0x010000;
const CLASS_NETWORK = 0x020000;
/** virtio-rng: "unclassified device", as QEMU's virtio-rng-pci. */
const CLASS_OTHER = 0xff0000;

export function createSimDevice(options: SimBlkOptions): SimBlkDevice;
export function createSimDevice(options: SimNetOptions): SimNetDevice;
export function createSimDevice(options: SimRngOptions): SimRngDevice;
export function createSimDevice(options: SimOptions): AnySimDevice;
export function createSimDevice(options: SimOptions): AnySimDevice {
  const queueMaxSize = options.queueMaxSize ?? 256;
  if (!Number.isInteger(queueMaxSize) || queueMaxSize < 2 || queueMaxSize > 32768 || (queueMaxSize & (queueMaxSize - 1)) !== 0) {
    throw new UsageError('E_INVALID_ARGUMENT', `queueMaxSize must be a power of two from 2 to 32768, got ${queueMaxSize}`);
  }
  const dma = options.dma ?? new HeapDmaAllocator();
  if (options.type === 'blk') {
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
    const blkSize = options.blkSize ?? BLK_SECTOR_SIZE;
    if (!Number.isInteger(blkSize) || blkSize < BLK_SECTOR_SIZE || blkSize > 65536 || (blkSize & (blkSize - 1)) !== 0) {
      throw new UsageError('E_INVALID_ARGUMENT', `blkSize must be a power of two from 512 to 65536, got ${blkSize}`);
    }
    const d = options.discard;
    const wz = options.writeZeroes;
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
    return new SimBlkHandle(build('blk', options, model, dma, queueMaxSize, CLASS_STORAGE), model);
  }
  if (options.type === 'net') {
    const pairs = options.queuePairs;
    if (pairs !== undefined && (!Number.isInteger(pairs) || pairs < 1 || pairs > 64)) {
      throw new UsageError('E_INVALID_ARGUMENT', `queuePairs must be 1 to 64, got ${pairs}`);
    }
    const model = new NetModel({ mac: parseMac(options.mac ?? '52:54:00:12:34:56'), queuePairs: pairs, mergeable: options.mergeable ?? false });
    if (options.peer) {
      const other = netModels.get(options.peer);
      if (!other) throw new UsageError('E_INVALID_ARGUMENT', 'peer must be a reference NIC made by createSimDevice');
      model.join(other);
    }
    const handle = new SimNetHandle(build('net', options, model, dma, queueMaxSize, CLASS_NETWORK), model);
    netModels.set(handle, model);
    return handle;
  }
  if (options.type === 'rng') {
    const model = new RngModel(options.seed);
    return new SimRngHandle(build('rng', options, model, dma, queueMaxSize, CLASS_OTHER), model);
  }
  throw new UsageError('E_INVALID_ARGUMENT', `unknown device type ${String((options as { type: unknown }).type)}`, "use 'blk', 'net' or 'rng'");
}

/** Largest segment (size_max) by default. */
const DEFAULT_SIZE_MAX = 1 << 20;
/** Default discard / write-zeroes limits: sectors per segment and segments per request. */
const DEFAULT_RANGE_SECTORS = 8192;
const DEFAULT_RANGE_SEGMENTS = 16;

/** The model behind each NIC handle, for joining cables (peer). */
const netModels = new WeakMap<SimNetDevice, NetModel>();

function build(
  type: 'blk' | 'net' | 'rng', options: CommonOptions, model: DeviceModel, dma: HeapDmaAllocator, queueMaxSize: number, classCode: number,
): SimPciFunction {
  const offer = options.offer ?? {};
  const ringState = options.state?.ringState ?? false;
  const deviceState = options.state?.deviceState ?? ringState;
  if (deviceState && !ringState) {
    throw new UsageError('E_INVALID_ARGUMENT', 'state.deviceState needs state.ringState', 'the DEVICE_STATE mailbox is saved while STOP shows');
  }
  const mode = options.mode ?? 'drain';
  if (mode !== 'drain' && mode !== 'hold') {
    throw new UsageError('E_INVALID_ARGUMENT', `mode must be 'drain' or 'hold', got ${String(mode)}`);
  }
  const transportFeatures = (offer.packed ?? true ? bit(Feature.RING_PACKED) : 0n)
    | (offer.indirect ?? true ? bit(Feature.INDIRECT_DESC) : 0n)
    | (offer.eventIdx ?? true ? bit(Feature.EVENT_IDX) : 0n)
    | (offer.accessPlatform ?? true ? bit(Feature.ACCESS_PLATFORM) : 0n)
    | (ringState ? bit(Feature.RING_STATE) : 0n)
    | (deviceState ? bit(Feature.DEVICE_STATE) : 0n)
    | (options.state?.suspend ? bit(Feature.SUSPEND) : 0n);
  const msixVectors = options.msixVectors ?? model.queueCount + 1;
  if (!Number.isInteger(msixVectors) || msixVectors < 1 || msixVectors > MAX_MSIX_VECTORS) {
    throw new UsageError('E_INVALID_ARGUMENT', `msixVectors must be 1 to ${MAX_MSIX_VECTORS}, got ${msixVectors}`);
  }
  const completion = options.completion ?? 'immediate';
  if (typeof completion === 'object' && !(completion.latencyMs >= 0)) {
    throw new UsageError('E_INVALID_ARGUMENT', `completion latencyMs must be ≥ 0, got ${completion.latencyMs}`);
  }
  return new SimPciFunction({
    address: `sim:${type}`, model, dma, ownsDma: options.dma === undefined, queueMaxSize, transportFeatures, completion,
    stopMode: mode, msixVectors, classCode,
    // The capability covers the provisional registers offered (SPEC-NOTES §1): the mailbox with
    // DEVICE_STATE; without it COMMON_CFG_LEN, the state registers included, as the device always had.
    commonCfgLength: deviceState ? COMMON_CFG_EXT_LEN : COMMON_CFG_LEN,
  });
}

class SimDeviceHandle implements SimDevice {
  constructor(readonly fn: SimPciFunction) {}
  get dma(): HeapDmaAllocator {
    return this.fn.dma;
  }
  completeNow(): number {
    return this.fn.device.completeNow();
  }
  get held(): number {
    return this.fn.device.heldCount;
  }
  get stats(): SimStats {
    return this.fn.device.stats;
  }
  injectFault(fault: SimFault): void {
    this.fn.device.injectFault(fault);
  }
  clearFaults(): void {
    this.fn.device.clearFaults();
  }
  get violations(): readonly Violation[] {
    return this.fn.device.violations.list;
  }
  clearViolations(): void {
    this.fn.device.violations.clear();
  }
  suppressNotifications(q: number, suppressed: boolean): void {
    this.fn.device.suppressNotifications(q, suppressed);
  }
  get failure(): Error | undefined {
    return this.fn.device.failure;
  }
  get phase(): QuietPhase {
    return this.fn.device.phase;
  }
  get stateRefusal(): string | undefined {
    return this.fn.device.mailbox.refusal;
  }
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

class SimNetHandle extends SimDeviceHandle implements SimNetDevice {
  readonly type = 'net';
  constructor(fn: SimPciFunction, private readonly model: NetModel) {
    super(fn);
  }
  get mac(): Uint8Array {
    return this.model.mac;
  }
  get dropped(): number {
    return this.model.dropped;
  }
  setLinkUp(up: boolean): void {
    this.model.setLinkUp(up);
  }
  get activePairs(): number {
    return this.model.activePairs;
  }
}

class SimRngHandle extends SimDeviceHandle implements SimRngDevice {
  readonly type = 'rng';
  constructor(fn: SimPciFunction, private readonly model: RngModel) {
    super(fn);
  }
  get delivered(): number {
    return this.model.delivered;
  }
}

function positiveInt(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new UsageError('E_INVALID_ARGUMENT', `${what} must be a positive integer, got ${n}`);
  return n;
}

function parseMac(mac: string | Uint8Array): Uint8Array {
  if (typeof mac === 'string') {
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) {
      throw new UsageError('E_INVALID_ARGUMENT', `a MAC address looks like 52:54:00:12:34:56, got ${mac}`);
    }
    return Uint8Array.from(mac.split(':'), (h) => Number.parseInt(h, 16));
  }
  if (mac.length !== 6) throw new UsageError('E_INVALID_ARGUMENT', `a MAC address is 6 bytes, got ${mac.length}`);
  return Uint8Array.from(mac);
}

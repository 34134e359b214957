// The reference device: `createSimDevice({ type: 'blk' })` gives an in-process virtio-pci function
// (the CLI's `sim:blk` / `sim:net`) and the controls a test needs — completion timing, fault
// injection, notification suppression, statistics — plus the memory it shares with the driver.
// With `state` it offers the proposal's STOP + virtqueue state (RING_STATE), the DEVICE_STATE
// mailbox and virtio 1.4 SUSPEND (SPEC-NOTES §1–§2).

import { HeapDmaAllocator } from '../mem/dma.js';
import { BLK_SECTOR_SIZE, COMMON_CFG_EXT_LEN, COMMON_CFG_LEN, Feature, bit } from '../virtio/constants.js';
import { UsageError } from '../virtio/errors.js';
import { BlkModel } from './blk.js';
import type { QuietPhase } from './common-cfg.js';
import type { Completion, SimFault, SimStats, StopMode } from './device.js';
import { SimPciFunction } from './function.js';
import type { DeviceModel } from './model.js';
import { NetModel } from './net.js';
import { MAX_MSIX_VECTORS } from './pci-config.js';

export type { Completion, SimFault, SimStats, StopMode } from './device.js';
export type { QuietPhase } from './common-cfg.js';
export { DEVICE_STATE_MAGIC, DEVICE_STATE_VERSION, decodeDeviceState, encodeDeviceState, type HeldRequest } from './device-state.js';
export type { UsedFault } from './ring.js';
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
  /** The GET_ID answer, up to 20 ASCII bytes (default "uvirtio-sim"). */
  serial?: string;
}

export interface SimNetOptions extends CommonOptions {
  type: 'net';
  /** "52:54:00:12:34:56" (the default) or 6 bytes. */
  mac?: string | Uint8Array;
}

export interface SimDevice {
  readonly fn: SimPciFunction;
  readonly dma: HeapDmaAllocator;
  /** Completes every request held in flight (manual or latency completion); returns how many. */
  completeNow(): number;
  /** Requests fetched from the rings and not yet completed. */
  readonly held: number;
  readonly stats: SimStats;
  /** Makes the device misbehave on its next used element (of `fault.queue`, or any queue). */
  injectFault(fault: SimFault): void;
  /** Asks the driver not to notify queue `q` (a polling device) or, with false, to notify again. */
  suppressNotifications(q: number, suppressed: boolean): void;
  /** Why the device set DEVICE_NEEDS_RESET, until the driver resets it. */
  readonly failure: Error | undefined;
  /** Running, or on its way to / in STOP or SUSPEND. */
  readonly phase: QuietPhase;
  /** Why the last DEVICE_STATE command was refused (CMD read 0xffff), until the next command or reset. */
  readonly stateRefusal: string | undefined;
}

export interface SimBlkDevice extends SimDevice {
  readonly type: 'blk';
  /** The disk's bytes (a new array after resize()). */
  readonly disk: Uint8Array;
  /** Changes the capacity: a config change (config_generation, config interrupt). */
  resize(capacitySectors: number): void;
}

export interface SimNetDevice extends SimDevice {
  readonly type: 'net';
  readonly mac: Uint8Array;
  /** Frames dropped (link down, or a receive buffer too small). */
  readonly dropped: number;
  /** Sets the link status bit: a config change. */
  setLinkUp(up: boolean): void;
}

/** PCI class codes: mass storage / SCSI (as QEMU's virtio-blk-pci), network / Ethernet. */
const CLASS_STORAGE = 0x010000;
const CLASS_NETWORK = 0x020000;

export function createSimDevice(options: SimBlkOptions): SimBlkDevice;
export function createSimDevice(options: SimNetOptions): SimNetDevice;
export function createSimDevice(options: SimBlkOptions | SimNetOptions): SimBlkDevice | SimNetDevice;
export function createSimDevice(options: SimBlkOptions | SimNetOptions): SimBlkDevice | SimNetDevice {
  const queueMaxSize = options.queueMaxSize ?? 256;
  if (!Number.isInteger(queueMaxSize) || queueMaxSize < 2 || queueMaxSize > 32768 || (queueMaxSize & (queueMaxSize - 1)) !== 0) {
    throw new UsageError('E_INVALID_ARGUMENT', `queueMaxSize must be a power of two from 2 to 32768, got ${queueMaxSize}`);
  }
  const dma = options.dma ?? new HeapDmaAllocator();
  if (options.type === 'blk') {
    const from = options.diskFrom;
    const defaultSectors = from ? Math.max(1, Math.ceil(from.length / BLK_SECTOR_SIZE)) : 2048;
    const capacitySectors = positiveInt(options.capacitySectors ?? defaultSectors, 'capacitySectors');
    if (from && from.length > capacitySectors * BLK_SECTOR_SIZE) {
      throw new UsageError('E_INVALID_ARGUMENT', `diskFrom has ${from.length} bytes, more than ${capacitySectors} sectors`);
    }
    const model = new BlkModel({
      capacitySectors,
      queues: positiveInt(options.queues ?? 1, 'queues'),
      queueMaxSize,
      serial: options.serial ?? 'uvirtio-sim',
    });
    if (from) model.disk.set(from);
    return new SimBlkHandle(build('blk', options, model, dma, queueMaxSize, CLASS_STORAGE), model);
  }
  if (options.type === 'net') {
    const model = new NetModel(parseMac(options.mac ?? '52:54:00:12:34:56'));
    return new SimNetHandle(build('net', options, model, dma, queueMaxSize, CLASS_NETWORK), model);
  }
  throw new UsageError('E_INVALID_ARGUMENT', `unknown device type ${String((options as { type: unknown }).type)}`, "use 'blk' or 'net'");
}

function build(
  type: 'blk' | 'net', options: CommonOptions, model: DeviceModel, dma: HeapDmaAllocator, queueMaxSize: number, classCode: number,
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
    return this.fn.device.held;
  }
  get stats(): SimStats {
    return this.fn.device.stats;
  }
  injectFault(fault: SimFault): void {
    this.fn.device.injectFault(fault);
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

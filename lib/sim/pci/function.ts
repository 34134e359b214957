// SimPciFunction: the reference device as a PCI function, implementing the same PciFunction a VFIO
// device does. Configuration space is in config.ts; BAR 4 is decoded here into the virtio
// structures (virtio 1.2 §4.1.4): common configuration, notifications, ISR, device configuration,
// and the MSI-X table and pending bits.

import { HeapDmaAllocator } from '../../mem/dma.js';
import type { PciFunction, RegisterWindow } from '../../pci/function.js';
import { PciCommand } from '../../pci/config.js';
import { COMMON_CFG_EXT_LEN, COMMON_CFG_LEN, PCI_DEVICE_MODERN_BASE } from '../../spec/index.js';
import { DeviceError, UsageError } from '../../errors.js';
import { checkValue, choice, int, optionsObject, type OptionKeys } from '../../util/options.js';
import { safeIsArray, shown } from '../../util/shown.js';
import { SimVirtioDevice, type Completion, type StopMode } from '../virtio/device.js';
import type { DeviceModel } from '../virtio/model.js';
import { SimMsix } from './msix.js';
import { Bar4, MAX_MSIX_VECTORS, NOTIFY_OFF_MULTIPLIER, SIM_BAR, SimConfigSpace, type BarAccess } from './config.js';

export interface SimPciFunctionOptions {
  address: string;
  model: DeviceModel;
  dma: HeapDmaAllocator;
  /** The function created `dma` and closes it with itself; memory passed in belongs to its owner. */
  ownsDma: boolean;
  queueMaxSize: number;
  /** Transport feature bits the device offers besides VERSION_1. */
  transportFeatures: bigint;
  completion: Completion;
  stopMode: StopMode;
  msixVectors: number;
  /** PCI class code (24 bits). */
  classCode: number;
  /** Length of the common configuration capability: COMMON_CFG_LEN, or COMMON_CFG_EXT_LEN with DEVICE_STATE. */
  commonCfgLength: number;
}

/** SimPciFunctionOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const SIM_PCI_FUNCTION_OPTION_KEYS: OptionKeys<SimPciFunctionOptions> = {
  address: true, model: true, dma: true, ownsDma: true, queueMaxSize: true, transportFeatures: true, completion: true,
  stopMode: true, msixVectors: true, classCode: true, commonCfgLength: true,
};

/** Queue sizes the device allows: a power of two up to 32768 (virtio 1.2 §2.7; 2 for packed's sake). */
export const QUEUE_SIZE = int(2, 32768, { powerOfTwo: true });
/** What STOP does with fetched requests (docs/provisional-registers.md): 'drain' completes them, 'hold' keeps them for DEVICE_STATE. */
export const STOP_MODE = choice('drain', 'hold');
/** PCI class codes are 24 bits (base class, sub-class, programming interface: PCI Local Bus 3.0 §6.2.1). */
const CLASS_CODE = int(0, 0xff_ffff);
/** A virtio device id the 16-bit PCI device id 0x1040 + id holds (virtio 1.2 §4.1.2). */
const DEVICE_TYPE = int(1, 0xffff - PCI_DEVICE_MODERN_BASE);
/** num_queues is le16 (virtio 1.2 §4.1.4.3). */
const QUEUE_COUNT = int(1, 0xffff);
/** The DeviceModel members the device calls without asking whether they are there. */
const MODEL_METHODS = ['attach', 'fetchesRequests', 'serve', 'receive', 'reset'] as const;
/** Transport features are bits 24 to 63 of the 64-bit feature space (virtio 1.2 §6). */
const TRANSPORT_FEATURES = (1n << 64n) - (1n << 24n);

/** The longest completion latency: the largest delay Node's setTimeout keeps (2^31 - 1 ms, about 24.8 days). */
const MAX_LATENCY_MS = 2 ** 31 - 1;

/**
 * The completion option as the device keeps it: 'immediate', 'manual', or a copy of { latencyMs }
 * read once (the device reads it on every request: a getter could change it later). `what` names
 * the option in the message. Throws E_INVALID_ARGUMENT (UsageError) for anything else, a latency
 * that is not a number of milliseconds from 0 to 2^31 - 1 (setTimeout's limit) and a key { latencyMs } does not have.
 */
export function checkCompletion(given: unknown, what: string): Completion {
  if (given === 'immediate' || given === 'manual') return given;
  if (typeof given !== 'object' || given === null || safeIsArray(given)) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what} must be 'immediate', 'manual' or { latencyMs }, got ${shown(given)}`,
      'leave it out for immediate completion');
  }
  const { latencyMs } = optionsObject(given as { latencyMs: number }, what, { latencyMs: true });
  if (typeof latencyMs !== 'number' || !Number.isFinite(latencyMs) || latencyMs < 0 || latencyMs > MAX_LATENCY_MS) {
    // Node's setTimeout runs a delay beyond 2^31 - 1 ms after 1 ms (with a warning): refused, not shortened.
    throw new UsageError('E_INVALID_ARGUMENT', `completion latencyMs must be a number of milliseconds from 0 to ${MAX_LATENCY_MS}, got ${shown(latencyMs)}`,
      "for requests that never complete on their own use completion 'manual' (completeNow() completes them)");
  }
  return { latencyMs };
}

/**
 * The values of SimPciFunctionOptions (read once by the caller) checked: E_INVALID_ARGUMENT
 * (UsageError) naming the option for a value the function cannot be built with.
 */
function checkFunctionOptions(o: SimPciFunctionOptions): SimPciFunctionOptions {
  const bad = (what: string, expects: string, got: unknown): UsageError =>
    new UsageError('E_INVALID_ARGUMENT', `SimPciFunction ${what} must be ${expects}, got ${shown(got)}`,
      'createSimDevice({ type, … }) builds the function from checked options');
  if (typeof o.address !== 'string' || o.address.length === 0) throw bad('address', 'a non-empty string', o.address);
  const model: unknown = o.model;
  const m = model as Partial<DeviceModel> | null;
  if (typeof m !== 'object' || m === null || !DEVICE_TYPE.fits(m.deviceType) || !QUEUE_COUNT.fits(m.queueCount)
    || typeof m.features !== 'bigint' || m.features < 0n || m.features >= 1n << 64n || !(m.config?.bytes instanceof Uint8Array)
    || MODEL_METHODS.some((name) => typeof m[name] !== 'function')) {
    throw bad('model', 'a DeviceModel (lib/sim/virtio/model.ts: deviceType 1–0xefbf, queueCount 1–65535, features a 64-bit bigint, config, attach, fetchesRequests, serve, receive, reset)', model);
  }
  if (!(o.dma instanceof HeapDmaAllocator)) throw bad('dma', 'a HeapDmaAllocator', o.dma);
  if (typeof o.ownsDma !== 'boolean') throw bad('ownsDma', 'a boolean', o.ownsDma);
  if (typeof o.transportFeatures !== 'bigint' || (o.transportFeatures & ~TRANSPORT_FEATURES) !== 0n) {
    throw bad('transportFeatures', 'a bigint with bits 24–63 only (virtio 1.2 §6)', o.transportFeatures);
  }
  if (o.commonCfgLength !== COMMON_CFG_LEN && o.commonCfgLength !== COMMON_CFG_EXT_LEN) {
    throw bad('commonCfgLength', `COMMON_CFG_LEN (${COMMON_CFG_LEN}) or COMMON_CFG_EXT_LEN (${COMMON_CFG_EXT_LEN})`, o.commonCfgLength);
  }
  return {
    ...o,
    queueMaxSize: checkValue(QUEUE_SIZE, o.queueMaxSize, 'SimPciFunction queueMaxSize'),
    completion: checkCompletion(o.completion, 'SimPciFunction completion'),
    stopMode: checkValue(STOP_MODE, o.stopMode, 'SimPciFunction stopMode'),
    msixVectors: checkValue(int(1, MAX_MSIX_VECTORS), o.msixVectors, 'SimPciFunction msixVectors'),
    classCode: checkValue(CLASS_CODE, o.classCode, 'SimPciFunction classCode'),
  };
}

type Width = 1 | 2 | 4;
const WIDTH_MASK: Record<Width, number> = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff };

export class SimPciFunction implements PciFunction {
  readonly address: string;
  readonly dma: HeapDmaAllocator;
  readonly msix: SimMsix;
  /** The reference device runs on the driver's thread (PciFunction.deviceOnDriverThread). */
  readonly deviceOnDriverThread = true;
  /** The virtio device behind the function (tests and the CLI reach its controls through it). */
  readonly device: SimVirtioDevice;
  private readonly config: SimConfigSpace;
  private readonly window: RegisterWindow;
  private readonly ownsDma: boolean;
  private closed = false;

  /**
   * Built from `options` read once (createSimDevice builds one from its own options).
   * @throws UsageError E_INVALID_ARGUMENT for a key it does not have, or a value it cannot be built
   *   with (queueMaxSize not a power of two from 2 to 32768, msixVectors outside 1–MAX_MSIX_VECTORS,
   *   a completion other than 'immediate', 'manual' or { latencyMs ≥ 0 }, …), naming the option.
   */
  constructor(options: SimPciFunctionOptions) {
    const o = checkFunctionOptions(optionsObject(options, 'SimPciFunction options', SIM_PCI_FUNCTION_OPTION_KEYS));
    this.address = o.address;
    this.dma = o.dma;
    this.ownsDma = o.ownsDma;
    this.config = new SimConfigSpace({
      deviceType: o.model.deviceType, classCode: o.classCode, notifyQueues: o.model.queueCount,
      deviceConfigLen: o.model.config.bytes.length, msixVectors: o.msixVectors, commonCfgLength: o.commonCfgLength,
    });
    this.msix = new SimMsix(o.msixVectors, {
      read: () => this.config.readMsixControl(),
      write: (v) => this.config.writeMsixControl(v),
    });
    this.device = new SimVirtioDevice({
      model: o.model, mem: o.dma, queueMaxSize: o.queueMaxSize, transportFeatures: o.transportFeatures,
      completion: o.completion, stopMode: o.stopMode, msixTableSize: o.msixVectors, commonLength: o.commonCfgLength,
      pci: {
        msixActive: () => this.msix.active,
        signal: (vector) => this.msix.signal(vector),
        busMaster: () => (this.config.command & PciCommand.BUS_MASTER) !== 0,
      },
    });
    const bar = new Bar4Decoder(this.device, this.msix, () => !this.closed && (this.config.command & PciCommand.MEMORY) !== 0);
    this.config.bar = bar;
    this.config.onViolation = (rule, message) => this.device.violation(rule, message);
    this.config.onMsixControl = () => this.msix.controlWritten();
    this.window = {
      size: Bar4.SIZE,
      read8: (off) => bar.read(off, 1),
      read16: (off) => bar.read(off, 2),
      read32: (off) => bar.read(off, 4),
      write8: (off, v) => bar.write(off, 1, v),
      write16: (off, v) => bar.write(off, 2, v),
      write32: (off, v) => bar.write(off, 4, v),
    };
  }

  configRead8(offset: number): number {
    return this.config.read(offset, 1);
  }
  configRead16(offset: number): number {
    return this.config.read(offset, 2);
  }
  configRead32(offset: number): number {
    return this.config.read(offset, 4);
  }
  configWrite8(offset: number, value: number): void {
    if (!this.closed) this.config.write(offset, 1, value);
  }
  configWrite16(offset: number, value: number): void {
    if (!this.closed) this.config.write(offset, 2, value);
  }
  configWrite32(offset: number, value: number): void {
    if (!this.closed) this.config.write(offset, 4, value);
  }

  bar(index: number): RegisterWindow {
    if (index !== SIM_BAR) {
      throw new DeviceError('E_CAP_MISSING', `${this.address} has no BAR ${index}`,
        `the reference device has one memory BAR, BAR ${SIM_BAR}`);
    }
    return this.window;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.device.close();
    this.msix.disable();
    // A shared allocator (options.dma: e.g. a migration target reaching the driver's memory) outlives us.
    if (this.ownsDma) this.dma.close();
  }
}

/** BAR 4 decode: naturally aligned accesses inside a structure reach it; anything else reads 0. */
class Bar4Decoder implements BarAccess {
  constructor(
    private readonly device: SimVirtioDevice,
    private readonly msix: SimMsix,
    private readonly decoding: () => boolean,
  ) {}

  read(offset: number, width: Width): number {
    if (!this.accepts(offset, width)) return 0;
    const d = this.device;
    if (within(offset, Bar4.COMMON, d.commonLength)) return d.common.read(offset - Bar4.COMMON, width);
    if (offset === Bar4.ISR) {
      if (width === 1) return d.readIsr();
      d.violation('register-access-invalid', `a ${width}-byte read of the 1-byte ISR status`);
      return 0;
    }
    if (within(offset, Bar4.DEVICE, Bar4.NOTIFY - Bar4.DEVICE) && (width === 1 || width === 2 || width === 4)) {
      return d.readDeviceConfig(offset - Bar4.DEVICE, width);
    }
    if (width === 4 && within(offset, Bar4.MSIX_TABLE, Bar4.MSIX_PBA - Bar4.MSIX_TABLE)) {
      return this.msix.readTable(offset - Bar4.MSIX_TABLE);
    }
    if (width === 4 && within(offset, Bar4.MSIX_PBA, Bar4.SIZE - Bar4.MSIX_PBA)) return this.msix.readPba(offset - Bar4.MSIX_PBA);
    return 0;
  }

  write(offset: number, width: Width, value: number): void {
    if (!this.accepts(offset, width)) return;
    const v = (value >>> 0) & WIDTH_MASK[width];
    const d = this.device;
    if (within(offset, Bar4.COMMON, d.commonLength)) {
      d.common.write(offset - Bar4.COMMON, width, v);
    } else if (within(offset, Bar4.NOTIFY, d.queues.length * NOTIFY_OFF_MULTIPLIER)) {
      // §4.1.4.4 / §4.1.5.2: a 16-bit write of the queue index at that queue's notify address.
      const rel = offset - Bar4.NOTIFY;
      const q = rel / NOTIFY_OFF_MULTIPLIER;
      if (width === 2 && rel % NOTIFY_OFF_MULTIPLIER === 0 && v === q) d.notify(q);
      else d.violation('notify-invalid', `a ${width}-byte write of ${v} at notify offset ${rel}`);
    } else if (width === 4 && within(offset, Bar4.MSIX_TABLE, Bar4.MSIX_PBA - Bar4.MSIX_TABLE)) {
      this.msix.writeTable(offset - Bar4.MSIX_TABLE, v);
    } else if (within(offset, Bar4.DEVICE, Bar4.NOTIFY - Bar4.DEVICE) && (width === 1 || width === 2 || width === 4)) {
      // Device configuration: only a model with writable fields takes the write (console's emerg_wr).
      d.writeDeviceConfig(offset - Bar4.DEVICE, width, v);
    }
    // The ISR and PBA are read-only.
  }

  private accepts(offset: number, width: Width): boolean {
    if (!this.decoding() || !Number.isInteger(offset) || offset < 0 || offset + width > Bar4.SIZE) return false;
    if (offset % width === 0) return true;
    // §4.1.3.1: every field is accessed aligned to its width.
    this.device.violation('register-access-invalid', `a misaligned ${width}-byte access at BAR offset 0x${offset.toString(16)}`);
    return false;
  }
}

function within(offset: number, start: number, len: number): boolean {
  return offset >= start && offset < start + len;
}

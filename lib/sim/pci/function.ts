// SimPciFunction: the reference device as a PCI function, implementing the same PciFunction a VFIO
// device does. Configuration space is in config.ts; BAR 4 is decoded here into the virtio
// structures (virtio 1.2 §4.1.4): common configuration, notifications, ISR, device configuration,
// and the MSI-X table and pending bits.

import type { HeapDmaAllocator } from '../../mem/dma.js';
import type { PciFunction, RegisterWindow } from '../../pci/function.js';
import { PciCommand } from '../../pci/config.js';
import { DeviceError } from '../../errors.js';
import { optionsObject, type OptionKeys } from '../../util/options.js';
import { SimVirtioDevice, type Completion, type StopMode } from '../virtio/device.js';
import type { DeviceModel } from '../virtio/model.js';
import { SimMsix } from './msix.js';
import { Bar4, NOTIFY_OFF_MULTIPLIER, SIM_BAR, SimConfigSpace, type BarAccess } from './config.js';

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

  /** Built from `options` read once (createSimDevice builds one from its own options; E_INVALID_ARGUMENT for a key it does not have). */
  constructor(options: SimPciFunctionOptions) {
    const o = optionsObject(options, 'SimPciFunction options', SIM_PCI_FUNCTION_OPTION_KEYS);
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

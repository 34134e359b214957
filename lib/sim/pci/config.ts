// The 256-byte PCI configuration space of the reference device (virtio 1.2 §4.1.2, §4.1.4):
// vendor 0x1AF4, device 0x1040 + virtio id, revision 1, a capability list with the five virtio
// structures (all in BAR 4) and MSI-X, and a 64-bit memory BAR 4 (BAR 4–5). Writes go through a
// per-bit write mask, so read-only fields stay put and BAR sizing works as on hardware.

import { PciConfig, PciCommand, PCI_CONFIG_SPACE_SIZE, PCI_STATUS_CAP_LIST } from '../../pci/config.js';
import {
  PCI_CAP_ID_MSIX, PCI_CAP_ID_VENDOR, PCI_CAP_LEN, PCI_DEVICE_MODERN_BASE, PCI_NOTIFY_CAP_LEN,
  PCI_VENDOR_VIRTIO, PciCapField, PciCapType,
} from '../../spec/index.js';
import { MSIX_ENTRY_SIZE, MsixControl } from './msix.js';
import type { RuleId } from '../virtio/rules.js';

/** The one BAR the device has, and where each structure lives in it. */
export const SIM_BAR = 4;
export const Bar4 = {
  COMMON: 0x0000,
  ISR: 0x1000,
  DEVICE: 0x2000,
  NOTIFY: 0x3000,
  MSIX_TABLE: 0x4000,
  MSIX_PBA: 0x6000,
  SIZE: 0x8000,
} as const;
/** Each queue notifies at its own dword: queue_notify_off = queue index (§4.1.4.4). */
export const NOTIFY_OFF_MULTIPLIER = 4;
export const MAX_MSIX_VECTORS = (Bar4.MSIX_PBA - Bar4.MSIX_TABLE) / MSIX_ENTRY_SIZE;

/** Capability offsets in configuration space, in list order. */
export const CapAt = { COMMON: 0x40, NOTIFY: 0x50, ISR: 0x64, DEVICE: 0x74, PCI_CFG: 0x84, MSIX: 0x98 } as const;
/** virtio_pci_cfg_cap.pci_cfg_data (virtio 1.2 §4.1.4, PCI configuration access capability). */
const PCI_CFG_DATA = PCI_CAP_LEN;
const PCI_CFG_CAP_LEN = PCI_CAP_LEN + 4;
const MSIX_CAP_CONTROL = 2;
const MSIX_CAP_TABLE = 4;
const MSIX_CAP_PBA = 8;
/** BAR type bits: memory, 64-bit (PCI 3.0 §6.2.5.1). */
const BAR_MEM_64 = 0x4;

export interface ConfigSpaceOptions {
  deviceType: number;
  /** Class code, subclass, programming interface as one 24-bit value. */
  classCode: number;
  notifyQueues: number;
  deviceConfigLen: number;
  msixVectors: number;
  /** Length of the common configuration structure (with or without the provisional registers). */
  commonCfgLength: number;
}

/** A register window the PCI_CFG capability reads and writes through. */
export interface BarAccess {
  read(offset: number, width: 1 | 2 | 4): number;
  write(offset: number, width: 1 | 2 | 4, value: number): void;
}

export class SimConfigSpace {
  private readonly bytes = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  private readonly view = new DataView(this.bytes.buffer);
  private readonly writable = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  /** Set once the function is assembled: where PCI_CFG accesses go, and who hears MSI-X control writes. */
  bar: BarAccess | undefined;
  onMsixControl: (() => void) | undefined;
  /** Where a broken driver rule is reported (virtio/rules.ts capability-write, pci-cfg-access-invalid). */
  onViolation: ((rule: RuleId, message: string) => void) | undefined;
  /** BAR 4 ranges of the structures other than PCI_CFG: pci_cfg_data may only reach into these (§4.1.4.9.2). */
  private readonly structures: { offset: number; length: number }[] = [];

  constructor(o: ConfigSpaceOptions) {
    const v = this.view;
    v.setUint16(PciConfig.VENDOR_ID, PCI_VENDOR_VIRTIO, true);
    v.setUint16(PciConfig.DEVICE_ID, PCI_DEVICE_MODERN_BASE + o.deviceType, true);
    // vfio-pci enables memory decoding when it opens a device; bus mastering is the driver's job.
    v.setUint16(PciConfig.COMMAND, PciCommand.MEMORY, true);
    v.setUint16(PciConfig.STATUS, PCI_STATUS_CAP_LIST, true);
    v.setUint8(PciConfig.REVISION_ID, 1); // §4.1.2.1: non-transitional devices have revision ≥ 1
    v.setUint8(PciConfig.CLASS_PROG, o.classCode & 0xff);
    v.setUint16(PciConfig.CLASS_PROG + 1, o.classCode >> 8, true);
    v.setUint32(PciConfig.BAR0 + 4 * SIM_BAR, BAR_MEM_64, true);
    v.setUint16(PciConfig.SUBSYSTEM_VENDOR_ID, PCI_VENDOR_VIRTIO, true);
    v.setUint16(PciConfig.SUBSYSTEM_ID, 0x40, true); // §4.1.2.1: 0x40 or higher for non-transitional
    v.setUint8(PciConfig.CAPABILITIES_PTR, CapAt.COMMON);

    this.vendorCap(CapAt.COMMON, CapAt.NOTIFY, PCI_CAP_LEN, PciCapType.COMMON, Bar4.COMMON, o.commonCfgLength);
    this.vendorCap(CapAt.NOTIFY, CapAt.ISR, PCI_NOTIFY_CAP_LEN, PciCapType.NOTIFY, Bar4.NOTIFY,
      o.notifyQueues * NOTIFY_OFF_MULTIPLIER);
    v.setUint32(CapAt.NOTIFY + PciCapField.NOTIFY_OFF_MULTIPLIER, NOTIFY_OFF_MULTIPLIER, true);
    // A device type without configuration (virtio-rng, §5.4.4) has no device capability.
    const hasDeviceCfg = o.deviceConfigLen > 0;
    this.vendorCap(CapAt.ISR, hasDeviceCfg ? CapAt.DEVICE : CapAt.PCI_CFG, PCI_CAP_LEN, PciCapType.ISR, Bar4.ISR, 1);
    if (hasDeviceCfg) this.vendorCap(CapAt.DEVICE, CapAt.PCI_CFG, PCI_CAP_LEN, PciCapType.DEVICE, Bar4.DEVICE, o.deviceConfigLen);
    // PCI configuration access capability: its bar, offset and length are the driver's to set.
    this.vendorCap(CapAt.PCI_CFG, CapAt.MSIX, PCI_CFG_CAP_LEN, PciCapType.PCI_CFG, 0, 0);

    v.setUint8(CapAt.MSIX, PCI_CAP_ID_MSIX);
    v.setUint8(CapAt.MSIX + 1, 0);
    v.setUint16(CapAt.MSIX + MSIX_CAP_CONTROL, o.msixVectors - 1, true);
    v.setUint32(CapAt.MSIX + MSIX_CAP_TABLE, Bar4.MSIX_TABLE | SIM_BAR, true);
    v.setUint32(CapAt.MSIX + MSIX_CAP_PBA, Bar4.MSIX_PBA | SIM_BAR, true);

    this.allowWrites(PciConfig.COMMAND, 2, PciCommand.MEMORY | PciCommand.BUS_MASTER | PciCommand.INTX_DISABLE);
    this.allowWrites(PciConfig.BAR0 + 4 * SIM_BAR, 4, ~(Bar4.SIZE - 1) >>> 0);
    this.allowWrites(PciConfig.BAR0 + 4 * (SIM_BAR + 1), 4, 0xffff_ffff);
    this.allowWrites(PciConfig.INTERRUPT_LINE, 1, 0xff);
    this.allowWrites(CapAt.MSIX + MSIX_CAP_CONTROL, 2, MsixControl.ENABLE | MsixControl.FUNCTION_MASK);
    this.allowWrites(CapAt.PCI_CFG + PciCapField.BAR, 1, 0xff);
    this.allowWrites(CapAt.PCI_CFG + PciCapField.OFFSET, 4, 0xffff_ffff);
    this.allowWrites(CapAt.PCI_CFG + PciCapField.LENGTH, 4, 0xffff_ffff);
    this.allowWrites(CapAt.PCI_CFG + PCI_CFG_DATA, 4, 0xffff_ffff);
  }

  read(offset: number, width: 1 | 2 | 4): number {
    if (!this.inRange(offset, width)) return 0;
    if (overlaps(offset, width, CapAt.PCI_CFG + PCI_CFG_DATA, 4)) this.pciCfgRead();
    return this.get(offset, width);
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    if (!this.inRange(offset, width)) return;
    this.checkCapabilityWrite(offset, width);
    for (let i = 0; i < width; i++) {
      const mask = this.writable[offset + i]!;
      const byte = (value >>> (8 * i)) & 0xff;
      this.bytes[offset + i] = (this.bytes[offset + i]! & ~mask) | (byte & mask);
    }
    if (overlaps(offset, width, CapAt.PCI_CFG + PCI_CFG_DATA, 4)) this.pciCfgWrite();
    if (overlaps(offset, width, CapAt.MSIX + MSIX_CAP_CONTROL, 2)) this.onMsixControl?.();
  }

  get command(): number {
    return this.view.getUint16(PciConfig.COMMAND, true);
  }

  /** Message control as the device side changes it (MsixController.enable), bypassing the write mask. */
  readMsixControl(): number {
    return this.view.getUint16(CapAt.MSIX + MSIX_CAP_CONTROL, true);
  }
  writeMsixControl(value: number): void {
    const sizeBits = this.readMsixControl() & MsixControl.TABLE_SIZE_MASK;
    this.view.setUint16(CapAt.MSIX + MSIX_CAP_CONTROL, (value & ~MsixControl.TABLE_SIZE_MASK) | sizeBits, true);
  }

  /** §4.1.4.1: the virtio capabilities are not the driver's to write, but PCI_CFG's bar, offset, length and data. */
  private checkCapabilityWrite(offset: number, width: number): void {
    const caps = { start: CapAt.COMMON, end: CapAt.PCI_CFG + PCI_CFG_CAP_LEN };
    if (offset + width <= caps.start || offset >= caps.end) return;
    const pciCfgRw = (b: number): boolean => b === CapAt.PCI_CFG + PciCapField.BAR || (b >= CapAt.PCI_CFG + PciCapField.OFFSET && b < CapAt.PCI_CFG + PCI_CFG_CAP_LEN);
    for (let b = offset; b < offset + width; b++) {
      if (b >= caps.start && b < caps.end && !pciCfgRw(b)) {
        this.onViolation?.('capability-write', `a ${width}-byte write at configuration offset 0x${offset.toString(16)}, inside a virtio capability`);
        return;
      }
    }
  }

  private vendorCap(at: number, next: number, len: number, type: number, offset: number, length: number): void {
    if (type !== PciCapType.PCI_CFG) this.structures.push({ offset, length });
    const v = this.view;
    v.setUint8(at + PciCapField.VNDR, PCI_CAP_ID_VENDOR);
    v.setUint8(at + PciCapField.NEXT, next);
    v.setUint8(at + PciCapField.LEN, len);
    v.setUint8(at + PciCapField.CFG_TYPE, type);
    v.setUint8(at + PciCapField.BAR, SIM_BAR);
    v.setUint32(at + PciCapField.OFFSET, offset, true);
    v.setUint32(at + PciCapField.LENGTH, length, true);
  }

  private allowWrites(offset: number, width: number, mask: number): void {
    for (let i = 0; i < width; i++) this.writable[offset + i] = (mask >>> (8 * i)) & 0xff;
  }

  /**
   * pci_cfg_data is a window of cap.length (1, 2, 4) bytes at cap.offset of cap.bar. §4.1.4.9.2:
   * the driver keeps the offset aligned to the length and the window inside another virtio
   * structure; otherwise the access is recorded and not carried out.
   */
  private pciCfgWindow(): { offset: number; width: 1 | 2 | 4 } | undefined {
    const bar = this.view.getUint8(CapAt.PCI_CFG + PciCapField.BAR);
    const offset = this.view.getUint32(CapAt.PCI_CFG + PciCapField.OFFSET, true);
    const width = this.view.getUint32(CapAt.PCI_CFG + PciCapField.LENGTH, true);
    const inside = this.structures.some((s) => offset >= s.offset && offset + width <= s.offset + s.length);
    if (bar !== SIM_BAR || (width !== 1 && width !== 2 && width !== 4) || offset % width !== 0 || !inside) {
      this.onViolation?.('pci-cfg-access-invalid', `pci_cfg_data used with bar ${bar}, offset 0x${offset.toString(16)}, length ${width}`);
      return undefined;
    }
    return { offset, width };
  }

  private pciCfgRead(): void {
    const w = this.pciCfgWindow();
    if (w && this.bar) this.view.setUint32(CapAt.PCI_CFG + PCI_CFG_DATA, this.bar.read(w.offset, w.width) >>> 0, true);
  }

  private pciCfgWrite(): void {
    const w = this.pciCfgWindow();
    if (w && this.bar) this.bar.write(w.offset, w.width, this.view.getUint32(CapAt.PCI_CFG + PCI_CFG_DATA, true));
  }

  private inRange(offset: number, width: number): boolean {
    return Number.isInteger(offset) && offset >= 0 && offset + width <= PCI_CONFIG_SPACE_SIZE && offset % width === 0;
  }

  private get(offset: number, width: 1 | 2 | 4): number {
    if (width === 1) return this.view.getUint8(offset);
    if (width === 2) return this.view.getUint16(offset, true);
    return this.view.getUint32(offset, true);
  }
}

function overlaps(a: number, aLen: number, b: number, bLen: number): boolean {
  return a < b + bLen && b < a + aLen;
}

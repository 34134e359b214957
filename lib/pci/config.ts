// PCI configuration space: the standard header fields and the capability list walk
// (PCI Local Bus 3.0 §6.7). Generic PCI only; virtio's vendor capabilities are parsed in
// lib/transport/pci.

import { DeviceError } from '../errors.js';
import type { PciFunction } from './function.js';

/** Offsets of the type 0 configuration header fields (PCI Local Bus 3.0 §6.1). */
export const PciConfig = {
  /** le16 vendor id (0x1af4 for virtio). */
  VENDOR_ID: 0x00,
  /** le16 device id. */
  DEVICE_ID: 0x02,
  /** le16 command register ({@link PciCommand}). */
  COMMAND: 0x04,
  /** le16 status register ({@link PCI_STATUS_CAP_LIST}). */
  STATUS: 0x06,
  /** u8 revision id (1 or more for a modern virtio device, virtio 1.2 §4.1.2). */
  REVISION_ID: 0x08,
  /** u8 programming interface; the class code follows. */
  CLASS_PROG: 0x09,
  /** u8 header type (bit 7: multi-function). */
  HEADER_TYPE: 0x0e,
  /** le32 BAR 0; BARs 1–5 follow, 4 bytes apart. */
  BAR0: 0x10,
  /** le16 subsystem vendor id. */
  SUBSYSTEM_VENDOR_ID: 0x2c,
  /** le16 subsystem id (a transitional virtio device's virtio id). */
  SUBSYSTEM_ID: 0x2e,
  /** u8 offset of the first capability. */
  CAPABILITIES_PTR: 0x34,
  /** u8 legacy interrupt line. */
  INTERRUPT_LINE: 0x3c,
} as const;

/** Bits of the command register (PCI Local Bus 3.0 §6.2.2). */
export const PciCommand = {
  /** I/O space enable. */
  IO: 1,
  /** Memory space enable. */
  MEMORY: 2,
  /** Bus master enable: the function may do DMA. */
  BUS_MASTER: 4,
  /** INTx emulation disable. */
  INTX_DISABLE: 0x400,
} as const;
/** Status register bit: the function has a capability list (PCI Local Bus 3.0 §6.2.3). */
export const PCI_STATUS_CAP_LIST = 0x10;
/** Standard configuration space size; capabilities live between 0x40 and 0xff. */
export const PCI_CONFIG_SPACE_SIZE = 256;

/** One entry of the capability list. */
export interface PciCapability {
  /** Capability id (0x09 vendor-specific, 0x11 MSI-X, …). */
  id: number;
  /** Offset of the capability in configuration space. */
  offset: number;
}

/**
 * Walks the capability list. The function is untrusted: pointers must stay inside the standard
 * space, be dword-aligned, and the walk ends after 48 entries (the most that fit), so a looping
 * list cannot hang the driver.
 * @throws DeviceError E_CAP_INVALID when the list is malformed.
 */
export function walkCapabilities(fn: PciFunction): PciCapability[] {
  const caps: PciCapability[] = [];
  if ((fn.configRead16(PciConfig.STATUS) & PCI_STATUS_CAP_LIST) === 0) return caps;
  let ptr = fn.configRead8(PciConfig.CAPABILITIES_PTR) & 0xfc;
  const seen = new Set<number>();
  while (ptr !== 0) {
    if (ptr < 0x40 || ptr > PCI_CONFIG_SPACE_SIZE - 4 || seen.has(ptr) || seen.size >= 48) {
      throw new DeviceError('E_CAP_INVALID', `${fn.address}: capability list is malformed at offset 0x${ptr.toString(16)}`,
        'the device presents a broken PCI capability list; it cannot be driven safely');
    }
    seen.add(ptr);
    caps.push({ id: fn.configRead8(ptr), offset: ptr });
    ptr = fn.configRead8(ptr + 1) & 0xfc;
  }
  return caps;
}

/** Sets memory-space and bus-master enable: VFIO does not set bus mastering for us. */
export function enableBusMaster(fn: PciFunction): void {
  const cmd = fn.configRead16(PciConfig.COMMAND);
  const want = cmd | PciCommand.MEMORY | PciCommand.BUS_MASTER;
  if (want !== cmd) fn.configWrite16(PciConfig.COMMAND, want);
}

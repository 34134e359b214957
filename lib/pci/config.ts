// PCI configuration space: the standard header fields and the capability list walk
// (PCI Local Bus 3.0 §6.7). Generic PCI only; virtio's vendor capabilities are parsed in
// lib/transport/pci.

import { DeviceError } from '../errors.js';
import type { PciFunction } from './function.js';

export const PciConfig = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  CAPABILITIES_PTR: 0x34,
  INTERRUPT_LINE: 0x3c,
} as const;

export const PciCommand = { IO: 1, MEMORY: 2, BUS_MASTER: 4, INTX_DISABLE: 0x400 } as const;
export const PCI_STATUS_CAP_LIST = 0x10;
/** Standard configuration space size; capabilities live between 0x40 and 0xff. */
export const PCI_CONFIG_SPACE_SIZE = 256;

export interface PciCapability {
  id: number;
  /** Offset of the capability in configuration space. */
  offset: number;
}

/**
 * Walks the capability list. The function is untrusted: pointers must stay inside the standard
 * space, be dword-aligned, and the walk ends after 48 entries (the most that fit), so a looping
 * list cannot hang the driver.
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

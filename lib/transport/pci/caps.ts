// Finding a modern virtio-pci device's structures: the device id, and the vendor capabilities that
// locate common configuration, notifications, ISR and device configuration (virtio 1.2 §4.1.2,
// §4.1.4). The capability list comes from the device, so every field is checked before use.

import { walkCapabilities, PciConfig } from '../../pci/config.js';
import type { PciFunction, RegisterWindow } from '../../pci/function.js';
import {
  COMMON_CFG_MIN_LEN, PCI_CAP_ID_VENDOR, PCI_CAP_LEN, PCI_DEVICE_MODERN_BASE, PCI_DEVICE_TRANSITIONAL_FIRST,
  PCI_DEVICE_TRANSITIONAL_LAST, PCI_NOTIFY_CAP_LEN, PCI_VENDOR_VIRTIO, PciCapField, PciCapType,
} from '../../spec/index.js';
import { DeviceError } from '../../errors.js';

/** A structure inside a BAR: the window and the byte range the capability names. */
export interface VirtioRegion {
  window: RegisterWindow;
  bar: number;
  offset: number;
  length: number;
}

export interface VirtioPciLayout {
  deviceType: number;
  common: VirtioRegion;
  notify: VirtioRegion & { multiplier: number };
  isr: VirtioRegion;
  /** Absent when the device type has no configuration. */
  device: VirtioRegion | undefined;
}

/**
 * The virtio device id of a PCI function (virtio 1.2 §4.1.2.1): 0x1040 + id for modern devices;
 * for transitional devices (0x1000–0x103f) the PCI subsystem device id.
 */
export function virtioDeviceType(fn: PciFunction): number {
  const vendor = fn.configRead16(PciConfig.VENDOR_ID);
  const device = fn.configRead16(PciConfig.DEVICE_ID);
  if (vendor !== PCI_VENDOR_VIRTIO) {
    throw new DeviceError('E_NOT_VIRTIO', `${fn.address} is not a virtio device (vendor 0x${vendor.toString(16)})`,
      'virtio devices have PCI vendor id 0x1af4; check the address');
  }
  if (device >= PCI_DEVICE_MODERN_BASE && device <= 0x107f) return device - PCI_DEVICE_MODERN_BASE;
  if (device >= PCI_DEVICE_TRANSITIONAL_FIRST && device <= PCI_DEVICE_TRANSITIONAL_LAST) {
    return fn.configRead16(PciConfig.SUBSYSTEM_ID);
  }
  throw new DeviceError('E_NOT_VIRTIO', `${fn.address}: 0x${device.toString(16)} is not a virtio device id`,
    'virtio device ids are 0x1000–0x103f (transitional) and 0x1040–0x107f (modern)');
}

interface RawCap { type: number; bar: number; offset: number; length: number; at: number }

function readVirtioCaps(fn: PciFunction): RawCap[] {
  const caps: RawCap[] = [];
  for (const cap of walkCapabilities(fn)) {
    if (cap.id !== PCI_CAP_ID_VENDOR) continue;
    const at = cap.offset;
    const len = fn.configRead8(at + PciCapField.LEN);
    if (len < PCI_CAP_LEN) continue; // too short to be a virtio_pci_cap; not ours
    caps.push({
      type: fn.configRead8(at + PciCapField.CFG_TYPE),
      bar: fn.configRead8(at + PciCapField.BAR),
      offset: fn.configRead32(at + PciCapField.OFFSET) >>> 0,
      length: fn.configRead32(at + PciCapField.LENGTH) >>> 0,
      at,
    });
  }
  return caps;
}

function region(fn: PciFunction, cap: RawCap, what: string): VirtioRegion {
  const window = fn.bar(cap.bar);
  if (cap.offset + cap.length > window.size || cap.length === 0) {
    throw new DeviceError('E_CAP_INVALID',
      `${fn.address}: ${what} capability (BAR ${cap.bar} offset 0x${cap.offset.toString(16)} length ${cap.length}) lies outside the ${window.size}-byte BAR`,
      'the device describes a structure it does not have; it cannot be driven safely');
  }
  return { window, bar: cap.bar, offset: cap.offset, length: cap.length };
}

/**
 * Locates the structures. Uses the first capability of each type whose BAR is 0–5 and ignores
 * unknown types (virtio 1.2 §4.1.4: "the driver SHOULD use the first one it can support").
 */
export function discoverVirtioPci(fn: PciFunction): VirtioPciLayout {
  const deviceType = virtioDeviceType(fn);
  const first = new Map<number, RawCap>();
  for (const cap of readVirtioCaps(fn)) {
    if (cap.bar > 5 || first.has(cap.type)) continue;
    first.set(cap.type, cap);
  }
  const need = (type: number, what: string): RawCap => {
    const cap = first.get(type);
    if (!cap) {
      throw new DeviceError('E_CAP_MISSING', `${fn.address}: no virtio ${what} capability`,
        'a modern (virtio 1.0+) device must have it; legacy-only devices are not supported');
    }
    return cap;
  };
  const common = region(fn, need(PciCapType.COMMON, 'common configuration'), 'common configuration');
  if (common.length < COMMON_CFG_MIN_LEN) {
    throw new DeviceError('E_CAP_INVALID', `${fn.address}: common configuration is ${common.length} bytes, less than ${COMMON_CFG_MIN_LEN}`,
      'the device\'s capability breaks virtio 1.2 §4.1.4.3 (a device bug, or not a virtio 1.0+ device): use another device');
  }
  const notifyCap = need(PciCapType.NOTIFY, 'notification');
  if (fn.configRead8(notifyCap.at + PciCapField.LEN) < PCI_NOTIFY_CAP_LEN) {
    throw new DeviceError('E_CAP_INVALID', `${fn.address}: notification capability is too short to hold notify_off_multiplier`,
      'the device\'s capability breaks virtio 1.2 §4.1.4.4 (a device bug, or not a virtio 1.0+ device): use another device');
  }
  const multiplier = fn.configRead32(notifyCap.at + PciCapField.NOTIFY_OFF_MULTIPLIER) >>> 0;
  const notify = { ...region(fn, notifyCap, 'notification'), multiplier };
  const isr = region(fn, need(PciCapType.ISR, 'ISR'), 'ISR');
  const deviceCap = first.get(PciCapType.DEVICE);
  const device = deviceCap ? region(fn, deviceCap, 'device configuration') : undefined;
  return { deviceType, common, notify, isr, device };
}

// Virtio PCI functions as sysfs shows them, and moving them between drivers.
//   /sys/bus/pci/devices/BDF/{vendor,device,subsystem_device,driver,iommu_group,driver_override}
//   /sys/bus/pci/drivers_probe, /sys/bus/pci/drivers/NAME/{bind,unbind}
//   /sys/kernel/iommu_groups/N/devices/      /dev/vfio/N (or /dev/vfio/noiommu-N)
// (Linux Documentation/ABI/testing/sysfs-bus-pci; Documentation/driver-api/vfio.rst.)

import fs from 'node:fs';
import path from 'node:path';
import { normaliseBdf } from '../pci/bdf.js';
import {
  deviceTypeName, PCI_DEVICE_MODERN_BASE, PCI_DEVICE_TRANSITIONAL_FIRST,
  PCI_DEVICE_TRANSITIONAL_LAST, PCI_VENDOR_VIRTIO,
} from '../spec/index.js';
import { UsageError } from '../errors.js';
import { rendered } from '../util/shown.js';
import { bindHint, MODPROBE_HINT, VfioError } from './errors.js';

const PCI_DEVICES = '/sys/bus/pci/devices';
const PCI_DRIVERS = '/sys/bus/pci/drivers';
const DEV_VFIO = '/dev/vfio';
const NOIOMMU_PARAM = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';
/** Where bind() remembers the driver a function had, so unbind() can give it back. */
const STATE_DIR = process.env.UVIRTIO_STATE_DIR ?? '/run/uvirtio';
/** Drivers that do not make a group unusable for VFIO (drivers/vfio/group.c: vfio_dev_driver_allowed). */
const VIABLE_DRIVERS = new Set(['vfio-pci', 'pci-stub', 'pcieport']);

/** What sysfs says about a virtio PCI function (`uvirtio list`). */
export interface VirtioPciInfo {
  /** Its BDF, "0000:00:02.0". */
  bdf: string;
  /** PCI vendor id (0x1af4). */
  vendorId: number;
  /** PCI device id (0x1040 + virtio type, or transitional 0x1000–0x103f). */
  deviceId: number;
  /** Virtio device type (virtio 1.2 §5): 0x1040+type, or a transitional device's subsystem id. */
  virtioType: number;
  /** The type's name ("blk", "net", …). */
  typeName: string;
  /** Whether it is a transitional (legacy-capable) device id. */
  transitional: boolean;
  /** The bound driver's name, or null. */
  driver: string | null;
  /** Its IOMMU group number, or null without one. */
  iommuGroup: number | null;
  /** The group's character device: /dev/vfio/N, or /dev/vfio/noiommu-N in no-IOMMU mode. */
  groupPath: string | null;
  /** Whether the group is a no-IOMMU group. */
  noIommu: boolean;
  /** Whether uvirtio can open it through VFIO now (bound to vfio-pci, group viable). */
  vfioUsable: boolean;
  /** Why vfioUsable is false. */
  reason?: string;
}

/** Normalises a BDF ("00:02.0" → "0000:00:02.0") or throws E_BAD_ADDRESS. */
export function parseBdf(text: string): string {
  const bdf = typeof text === 'string' ? normaliseBdf(text) : undefined;
  if (!bdf) {
    throw new UsageError('E_BAD_ADDRESS', `${rendered(text)} is not a PCI address`,
      'write it as domain:bus:device.function, e.g. 0000:00:02.0 (`uvirtio list` shows the devices)');
  }
  return bdf;
}

function readHex(file: string): number {
  return parseInt(fs.readFileSync(file, 'utf8').trim(), 16);
}

function linkName(file: string): string | null {
  try {
    return path.basename(fs.readlinkSync(file));
  } catch {
    return null;
  }
}

/** The name of the driver `bdf` is bound to, or null. */
export function driverOf(bdf: string): string | null {
  return linkName(path.join(PCI_DEVICES, bdf, 'driver'));
}

/** The IOMMU group number of `bdf`, or null when it has none. */
export function iommuGroupOf(bdf: string): number | null {
  const g = linkName(path.join(PCI_DEVICES, bdf, 'iommu_group'));
  return g === null ? null : Number(g);
}

/** Whether vfio's enable_unsafe_noiommu_mode is on (docs/test-vm.md#iommu-profiles). */
export function noIommuModeEnabled(): boolean {
  try {
    return fs.readFileSync(NOIOMMU_PARAM, 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

/** A PCI function of an IOMMU group and its driver. */
export interface GroupMember {
  /** Its BDF. */
  bdf: string;
  /** The driver it is bound to, or null. */
  driver: string | null;
}

/** The other PCI functions in an IOMMU group, with their drivers. */
export function groupMembers(group: number): GroupMember[] {
  const dir = `/sys/kernel/iommu_groups/${group}/devices`;
  return fs.readdirSync(dir).sort().map((bdf) => ({ bdf, driver: driverOf(bdf) }));
}

/** The functions of a group that make it unusable for VFIO: bound to a driver VFIO does not allow. */
export function groupBlockers(group: number, except?: string): (GroupMember & {
  /** The host driver that blocks the group. */
  driver: string;
})[] {
  return groupMembers(group).filter((m): m is GroupMember & { driver: string } =>
    m.bdf !== except && m.driver !== null && !VIABLE_DRIVERS.has(m.driver));
}

function virtioTypeOf(dir: string, deviceId: number): { type: number; transitional: boolean } | null {
  if (deviceId >= PCI_DEVICE_MODERN_BASE && deviceId <= PCI_DEVICE_MODERN_BASE + 0x3f) {
    return { type: deviceId - PCI_DEVICE_MODERN_BASE, transitional: false };
  }
  if (deviceId >= PCI_DEVICE_TRANSITIONAL_FIRST && deviceId <= PCI_DEVICE_TRANSITIONAL_LAST) {
    return { type: readHex(path.join(dir, 'subsystem_device')), transitional: true };
  }
  return null;
}

function groupPathOf(group: number): { groupPath: string | null; noIommu: boolean } {
  for (const [name, noIommu] of [[`${group}`, false], [`noiommu-${group}`, true]] as const) {
    const p = path.join(DEV_VFIO, name);
    if (fs.existsSync(p)) return { groupPath: p, noIommu };
  }
  return { groupPath: null, noIommu: false };
}

function whyNotUsable(info: Omit<VirtioPciInfo, 'vfioUsable' | 'reason'>): string | undefined {
  if (info.driver !== 'vfio-pci') return info.driver ? `bound to ${info.driver}` : 'bound to no driver';
  if (info.iommuGroup === null) return 'no IOMMU group';
  if (!fs.existsSync(DEV_VFIO)) return `${DEV_VFIO} is missing`;
  if (!info.groupPath) return `no ${DEV_VFIO} node for IOMMU group ${info.iommuGroup}`;
  const blockers = groupBlockers(info.iommuGroup, info.bdf);
  if (blockers.length) return `IOMMU group ${info.iommuGroup} also holds ${blockers.map((m) => `${m.bdf} (${m.driver})`).join(', ')}`;
  return undefined;
}

function infoFrom(bdf: string): VirtioPciInfo | null {
  const dir = path.join(PCI_DEVICES, bdf);
  const vendorId = readHex(path.join(dir, 'vendor'));
  const deviceId = readHex(path.join(dir, 'device'));
  if (vendorId !== PCI_VENDOR_VIRTIO) return null;
  const t = virtioTypeOf(dir, deviceId);
  if (!t) return null;
  const iommuGroup = iommuGroupOf(bdf);
  const base = {
    bdf, vendorId, deviceId, virtioType: t.type, typeName: deviceTypeName(t.type), transitional: t.transitional,
    driver: driverOf(bdf), iommuGroup, ...(iommuGroup === null ? { groupPath: null, noIommu: false } : groupPathOf(iommuGroup)),
  };
  const reason = whyNotUsable(base);
  return { ...base, vfioUsable: reason === undefined, ...(reason ? { reason } : {}) };
}

/** Every virtio PCI function on the system, by BDF. */
export function listVirtioDevices(): VirtioPciInfo[] {
  if (!fs.existsSync(PCI_DEVICES)) return [];
  return fs.readdirSync(PCI_DEVICES).sort().map(infoFrom).filter((i): i is VirtioPciInfo => i !== null);
}

/** One function; throws E_BAD_ADDRESS, E_NO_DEVICE or E_NOT_VIRTIO. */
export function describeDevice(text: string): VirtioPciInfo {
  const bdf = parseBdf(text);
  if (!fs.existsSync(path.join(PCI_DEVICES, bdf))) {
    throw new VfioError('E_NO_DEVICE', `there is no PCI function ${bdf}`, '`uvirtio list` shows the virtio functions present');
  }
  const info = infoFrom(bdf);
  if (!info) {
    const vendor = readHex(path.join(PCI_DEVICES, bdf, 'vendor'));
    const device = readHex(path.join(PCI_DEVICES, bdf, 'device'));
    throw new VfioError('E_NOT_VIRTIO', `${bdf} is not a virtio device (vendor 0x${vendor.toString(16)}, device 0x${device.toString(16)})`,
      `virtio functions have vendor 0x${PCI_VENDOR_VIRTIO.toString(16)}; \`uvirtio list\` shows them`);
  }
  return info;
}

/**
 * Checks that a function can be opened through VFIO and returns its group device path; each
 * failure is its own code with the fix in the hint.
 */
export function requireVfioUsable(text: string): VirtioPciInfo & {
  /** The group's character device. */
  groupPath: string;
  /** The IOMMU group number. */
  iommuGroup: number;
} {
  const info = describeDevice(text);
  const { bdf } = info;
  if (info.driver === null) {
    throw new VfioError('E_NOT_BOUND', `${bdf} (virtio-${info.typeName}) is not bound to vfio-pci (it has no driver)`, bindHint(bdf));
  }
  if (info.driver !== 'vfio-pci') {
    throw new VfioError('E_DRIVER_BOUND', `${bdf} (virtio-${info.typeName}) is bound to ${info.driver}, not vfio-pci`, bindHint(bdf));
  }
  if (!fs.existsSync(DEV_VFIO)) throw new VfioError('E_VFIO_UNAVAILABLE', `${DEV_VFIO} does not exist`, MODPROBE_HINT);
  if (info.iommuGroup === null || info.groupPath === null) {
    throw new VfioError('E_NO_IOMMU', `${bdf} has no IOMMU group${noIommuModeEnabled() ? '' : ' and no-IOMMU mode is off'}`,
      'enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line), or, on a test machine only, ' +
      '`modprobe vfio enable_unsafe_noiommu_mode=1` with a kernel built with CONFIG_VFIO_NOIOMMU');
  }
  const reason = info.reason;
  if (reason?.startsWith('IOMMU group')) {
    throw new VfioError('E_GROUP_NOT_VIABLE', `${bdf}: ${reason}; VFIO needs every function of a group on vfio-pci or unbound`,
      `bind the others to vfio-pci too (\`uvirtio bind BDF\` for each) or unbind them`);
  }
  return { ...info, groupPath: info.groupPath, iommuGroup: info.iommuGroup };
}

function writeSysfs(file: string, value: string): void {
  try {
    fs.writeFileSync(file, value);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new VfioError('E_PERMISSION', `cannot write ${file}: ${code}`, 'binding drivers needs root');
    }
    throw new VfioError('E_SYSCALL', `writing "${value.trim()}" to ${file} failed: ${code ?? String(e)}`, undefined, { cause: e });
  }
}

const stateFile = (bdf: string): string => path.join(STATE_DIR, `${bdf}.driver`);

/** The driver bind() took the function from, if it remembered one. */
export function previousDriver(bdf: string): string | null {
  try {
    return fs.readFileSync(stateFile(parseBdf(bdf)), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/**
 * Gives a function to vfio-pci: driver_override, unbind from the current driver, drivers_probe.
 * Remembers the previous driver for unbind(). Returns it (null when there was none).
 */
export function bindVfio(text: string): {
  /** The normalised BDF. */
  bdf: string;
  /** The driver it was bound to before, or null. */
  previous: string | null;
} {
  const info = describeDevice(text);
  const { bdf } = info;
  if (info.driver === 'vfio-pci') return { bdf, previous: previousDriver(bdf) };
  if (!fs.existsSync(path.join(PCI_DRIVERS, 'vfio-pci'))) {
    throw new VfioError('E_VFIO_UNAVAILABLE', 'the vfio-pci driver is not loaded', MODPROBE_HINT);
  }
  if (info.driver) {
    fs.mkdirSync(STATE_DIR, { recursive: true });
    fs.writeFileSync(stateFile(bdf), `${info.driver}\n`);
  }
  writeSysfs(path.join(PCI_DEVICES, bdf, 'driver_override'), 'vfio-pci');
  if (info.driver) writeSysfs(path.join(PCI_DEVICES, bdf, 'driver', 'unbind'), bdf);
  writeSysfs('/sys/bus/pci/drivers_probe', bdf);
  const now = driverOf(bdf);
  if (now !== 'vfio-pci') {
    throw new VfioError('E_DRIVER_BOUND', `${bdf} did not bind to vfio-pci (driver now: ${now ?? 'none'})`,
      iommuGroupOf(bdf) === null ? 'the function has no IOMMU group: enable the IOMMU or no-IOMMU mode' : 'see `dmesg` for the reason');
  }
  return { bdf, previous: info.driver };
}

/**
 * Takes a function from vfio-pci and gives it back to the driver it had before bind() (or to
 * whatever the kernel picks when none was remembered). Returns the driver it ends up with.
 */
export function unbindVfio(text: string): {
  /** The normalised BDF. */
  bdf: string;
  /** The driver it is bound to now, or null. */
  driver: string | null;
} {
  const info = describeDevice(text);
  const { bdf } = info;
  const previous = previousDriver(bdf);
  writeSysfs(path.join(PCI_DEVICES, bdf, 'driver_override'), '\n');
  if (info.driver === 'vfio-pci') writeSysfs(path.join(PCI_DRIVERS, 'vfio-pci', 'unbind'), bdf);
  if (previous && fs.existsSync(path.join(PCI_DRIVERS, previous))) {
    writeSysfs(path.join(PCI_DRIVERS, previous, 'bind'), bdf);
  } else {
    writeSysfs('/sys/bus/pci/drivers_probe', bdf);
  }
  fs.rmSync(stateFile(bdf), { force: true });
  return { bdf, driver: driverOf(bdf) };
}

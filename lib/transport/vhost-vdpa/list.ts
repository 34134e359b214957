// The vhost-vdpa devices of this host, for `uvirtio list`: every /dev/vhost-vdpa-N (a vDPA device
// bound to the vhost_vdpa driver), its vdpa device name from sysfs, and what it is: the virtio
// device id (VHOST_VDPA_GET_DEVICE_ID) and its queue count (VHOST_VDPA_GET_VQS_COUNT), read by
// opening it for a moment. drivers/vhost/vdpa.c allows one opener at a time and resets the device
// on open, so a device another process holds is reported in use (EBUSY) and left alone.

import fs from 'node:fs';
import { deviceTypeName } from '../../spec/index.js';
import { isUvirtioError } from '../../errors.js';
import { SysError } from '../../sys/errno.js';
import * as libc from '../../sys/libc.js';
import { checkVdpaPath, vdpaNameOf } from './device.js';
import { VdpaIoctl } from './uapi.js';

/** One /dev/vhost-vdpa-N as `uvirtio list` shows it. */
export interface VdpaDeviceInfo {
  /** Always 'vhost-vdpa' (the entries of `uvirtio list --json` for vfio functions have a `bdf` instead). */
  transport: 'vhost-vdpa';
  /** Its address: "vhost-vdpa:/dev/vhost-vdpa-0". */
  address: string;
  /** The character device, "/dev/vhost-vdpa-0". */
  path: string;
  /** The vdpa device's name ("blk0", as `vdpa dev add … name` gave it), or null when sysfs does not say. */
  name: string | null;
  /** Virtio device type (virtio 1.2 §5), or null when it could not be read. */
  virtioType: number | null;
  /** The type's name ("blk", "net", …), or null. */
  typeName: string | null;
  /** VHOST_VDPA_GET_VQS_COUNT, or null. */
  queues: number | null;
  /** Whether uvirtio can open it now. */
  usable: boolean;
  /** Why usable is false. */
  reason?: string;
}

/** The vhost-vdpa devices under `dev` (default /dev), by minor number. */
export function listVdpaDevices(dev = '/dev'): VdpaDeviceInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync(dev).filter((n) => /^vhost-vdpa-\d+$/.test(n));
  } catch {
    return [];
  }
  names.sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)));
  return names.map((n) => probe(`${dev}/${n}`));
}

function probe(path: string): VdpaDeviceInfo {
  const address = `vhost-vdpa:${path}`;
  const base = { transport: 'vhost-vdpa' as const, address, path, name: vdpaNameOf(path), virtioType: null, typeName: null, queues: null };
  let fd: number;
  try {
    checkVdpaPath(path, address);
    fd = libc.open(path, libc.O.RDWR);
  } catch (e) {
    const reason = e instanceof SysError && e.errnoName === 'EBUSY' ? 'in use by another process (vhost-vdpa takes one opener)'
      : isUvirtioError(e) ? e.message : String(e);
    return { ...base, usable: false, reason };
  }
  try {
    const b = new Uint8Array(4);
    libc.ioctl(fd, VdpaIoctl.GET_DEVICE_ID, b, 'VHOST_VDPA_GET_DEVICE_ID');
    const type = new DataView(b.buffer).getUint32(0, true);
    libc.ioctl(fd, VdpaIoctl.GET_VQS_COUNT, b, 'VHOST_VDPA_GET_VQS_COUNT');
    return { ...base, virtioType: type, typeName: deviceTypeName(type), queues: new DataView(b.buffer).getUint32(0, true), usable: true };
  } catch (e) {
    return { ...base, usable: false, reason: isUvirtioError(e) ? e.message : String(e) };
  } finally {
    libc.close(fd);
  }
}

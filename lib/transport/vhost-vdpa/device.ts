// One open /dev/vhost-vdpa-N: the path checked before it is opened, the fd, each vhost / vhost-vdpa
// request as a typed call (uapi.ts), and the IOTLB messages written to the fd. The errno of a
// failed call becomes a typed error here, so the transport above handles codes, not numbers.
//
// The path is untrusted: it is opened only when it is a character device whose major number is the
// one /proc/devices names "vhost-vdpa" (drivers/vhost/vdpa.c registers the region under that name),
// so `vhost-vdpa:/dev/watchdog` opens nothing. drivers/vhost/vdpa.c vhost_vdpa_open lets one
// process hold a device at a time (EBUSY) and resets the device on open.

import fs from 'node:fs';
import path from 'node:path';
import { DeviceError, DmaError, UsageError } from '../../errors.js';
import { Errno, SysError } from '../../sys/errno.js';
import * as libc from '../../sys/libc.js';
import { Struct } from '../../sys/layout.js';
import { encodeMsgV2, IotlbType, VdpaConfig, VdpaIoctl, VdpaIovaRange, VringAddr, VringFile, VringState, type IotlbRequest } from './uapi.js';

/** The hint every "this is not a vhost-vdpa device" error carries. */
export const NOT_VDPA_HINT = 'give a /dev/vhost-vdpa-N character device (`uvirtio list` shows them; a vdpa device appears there once bound to the vhost_vdpa driver)';

/** The character-device major number /proc/devices gives "vhost-vdpa", or null when the module is not loaded. */
export function vhostVdpaMajor(procDevices = '/proc/devices'): number | null {
  let text: string;
  try {
    text = fs.readFileSync(procDevices, 'utf8');
  } catch {
    return null;
  }
  const chars = text.split(/\n\s*\n/)[0] ?? '';
  for (const line of chars.split('\n')) {
    const m = /^\s*(\d+)\s+vhost-vdpa\s*$/.exec(line);
    if (m) return Number(m[1]);
  }
  return null;
}

/** Linux dev_t → major (include/linux/kdev_t.h, the user-space encoding of glibc's gnu_dev_major). */
export function devMajor(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

/** Linux dev_t → minor (include/linux/kdev_t.h, glibc's gnu_dev_minor). */
export function devMinor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
}

/**
 * Checks that `p` is a vhost-vdpa character device without opening it. Throws E_NO_DEVICE (no
 * such path), E_NOT_VIRTIO (anything else: a regular file, another character device, a directory)
 * with NOT_VDPA_HINT.
 */
export function checkVdpaPath(p: string, address: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw new SysError('stat', Errno.EACCES!, p);
    if (code === 'ENOENT') throw new DeviceError('E_NO_DEVICE', `${address}: ${p} does not exist`, NOT_VDPA_HINT);
    // ELOOP, ENAMETOOLONG, ENOTDIR, a NUL in the path (ERR_INVALID_ARG_*): say which.
    const why = code === 'ELOOP' ? 'is a loop of symbolic links' : code === 'ENAMETOOLONG' ? 'is too long a name'
      : code === 'ENOTDIR' ? 'has a part that is not a directory' : p.includes('\0') ? 'contains a NUL character' : `cannot be looked up (${code ?? String(e)})`;
    throw new DeviceError('E_NO_DEVICE', `${address}: the path ${why}`, NOT_VDPA_HINT);
  }
  if (!st.isCharacterDevice()) throw new DeviceError('E_NOT_VIRTIO', `${address}: ${p} is not a character device`, NOT_VDPA_HINT);
  const major = vhostVdpaMajor();
  if (major === null) {
    throw new DeviceError('E_NOT_VIRTIO', `${address}: ${p} cannot be a vhost-vdpa device: the vhost_vdpa module is not loaded (no "vhost-vdpa" in /proc/devices)`,
      'modprobe vhost_vdpa, then bind the vdpa device to it');
  }
  if (devMajor(st.rdev) !== major) {
    throw new DeviceError('E_NOT_VIRTIO', `${address}: ${p} is a character device of major ${devMajor(st.rdev)}, not vhost-vdpa (major ${major})`, NOT_VDPA_HINT);
  }
}

/** The name of the vdpa device behind a /dev/vhost-vdpa-N (sysfs: /sys/class/…/vhost-vdpa-N's parent), or null. */
export function vdpaNameOf(p: string): string | null {
  try {
    const st = fs.statSync(p);
    const node = fs.realpathSync(`/sys/dev/char/${devMajor(st.rdev)}:${devMinor(st.rdev)}`);
    return path.basename(path.dirname(node));
  } catch {
    return null;
  }
}

/** A typed error for a failed vhost request: the errno names the fault. */
function requestError(address: string, name: string, e: unknown): Error {
  if (!(e instanceof SysError)) return e as Error;
  if (e.errno === Errno.ENOTTY) {
    return new DeviceError('E_NOT_VIRTIO', `${address}: the device does not understand ${name} (ENOTTY): not a vhost-vdpa device`, NOT_VDPA_HINT, { cause: e });
  }
  if (e.errno === Errno.EBADF) {
    return new UsageError('E_CLOSED', `${address}: ${name} on a closed descriptor (EBADF)`, 'the transport was closed; open the device again', { cause: e });
  }
  return e;
}

/**
 * An open vhost-vdpa device fd: each request a method (errors: E_NOT_VIRTIO for ENOTTY, E_CLOSED
 * for EBADF, SysError E_SYSCALL / E_PERMISSION otherwise, each naming the request).
 */
export class VdpaFd {
  private open_ = true;

  private constructor(readonly address: string, readonly fd: number) {}

  /**
   * Opens `p` (checked first: checkVdpaPath) read-write and makes this process its owner
   * (VHOST_SET_OWNER). Throws E_NO_DEVICE, E_NOT_VIRTIO, E_PERMISSION, E_DEVICE_IN_USE (EBUSY:
   * another process has it open).
   */
  static open(address: string, p: string): VdpaFd {
    checkVdpaPath(p, address);
    let fd: number;
    try {
      fd = libc.open(p, libc.O.RDWR);
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.EBUSY) {
        throw new DeviceError('E_DEVICE_IN_USE', `${address}: ${p} is open in another process (vhost-vdpa takes one at a time)`,
          'close the other user (a QEMU, another uvirtio session), then try again', { cause: e });
      }
      if (e instanceof SysError && (e.errno === Errno.ENXIO || e.errno === Errno.ENODEV)) {
        throw new DeviceError('E_NO_DEVICE', `${address}: ${p} has no device behind it (${e.errnoName})`, NOT_VDPA_HINT, { cause: e });
      }
      throw e;
    }
    // The path may have been swapped (a symlink) between the check and the open: what was opened
    // is checked again, by its fd, before any request is sent to it.
    const major = vhostVdpaMajor();
    let st: fs.Stats | null = null;
    try {
      st = fs.fstatSync(fd);
    } catch {
      // checked below as not a device
    }
    if (!st || !st.isCharacterDevice() || major === null || devMajor(st.rdev) !== major) {
      libc.close(fd);
      throw new DeviceError('E_NOT_VIRTIO', `${address}: what ${p} opened is not a vhost-vdpa device (the path changed after it was checked)`, NOT_VDPA_HINT);
    }
    const d = new VdpaFd(address, fd);
    try {
      d.ioctl('VHOST_SET_OWNER', VdpaIoctl.SET_OWNER);
    } catch (e) {
      d.close();
      throw e;
    }
    return d;
  }

  /**
   * Takes an fd another component opened (it must be a vhost-vdpa fd: fstat is checked, as for a
   * path). Throws E_INVALID_ARGUMENT when `fd` is not an open descriptor, E_NOT_VIRTIO when it is
   * not a vhost-vdpa device. The fd is the transport's from then on (closed with it).
   * VHOST_SET_OWNER is sent; EBUSY (the opener set it already) is accepted.
   */
  static adopt(address: string, fd: number): VdpaFd {
    if (!Number.isSafeInteger(fd) || fd < 0) throw new UsageError('E_INVALID_ARGUMENT', `${address}: fd ${fd} is not a file descriptor`);
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
    } catch {
      throw new UsageError('E_INVALID_ARGUMENT', `${address}: fd ${fd} is not an open file descriptor (EBADF)`, 'pass an fd of an open /dev/vhost-vdpa-N');
    }
    const major = vhostVdpaMajor();
    if (!st.isCharacterDevice() || major === null || devMajor(st.rdev) !== major) {
      throw new DeviceError('E_NOT_VIRTIO', `${address}: fd ${fd} is not a vhost-vdpa device`, NOT_VDPA_HINT);
    }
    const d = new VdpaFd(address, fd);
    try {
      d.ioctl('VHOST_SET_OWNER', VdpaIoctl.SET_OWNER);
    } catch (e) {
      // EBUSY: the device has an owner already (the opener set it); anything else is a real fault.
      if (!(e instanceof SysError && e.errno === Errno.EBUSY)) throw e;
    }
    return d;
  }

  /** Whether close() has not been called. */
  get isOpen(): boolean {
    return this.open_;
  }

  private ioctl(name: string, request: number, arg?: Uint8Array): number {
    if (!this.open_) throw new UsageError('E_CLOSED', `${this.address}: ${name} after the device was closed`, 'open the device again');
    try {
      return libc.ioctl(this.fd, request, arg, name);
    } catch (e) {
      throw requestError(this.address, name, e);
    }
  }

  private u32(name: string, request: number): number {
    const b = new Uint8Array(4);
    this.ioctl(name, request, b);
    return new DataView(b.buffer).getUint32(0, true);
  }
  private u64(name: string, request: number): bigint {
    const b = new Uint8Array(8);
    this.ioctl(name, request, b);
    return new DataView(b.buffer).getBigUint64(0, true);
  }
  private setU64(name: string, request: number, value: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, value, true);
    this.ioctl(name, request, b);
  }
  private vringState(name: string, request: number, index: number, num: number): number {
    const s = new Struct(VringState).set('index', index).set('num', num >>> 0);
    this.ioctl(name, request, s.bytes);
    return s.get('num');
  }

  /** VHOST_VDPA_GET_DEVICE_ID: the virtio device id. */
  deviceId(): number {
    return this.u32('VHOST_VDPA_GET_DEVICE_ID', VdpaIoctl.GET_DEVICE_ID);
  }
  /** VHOST_VDPA_GET_STATUS. */
  status(): number {
    const b = new Uint8Array(1);
    this.ioctl('VHOST_VDPA_GET_STATUS', VdpaIoctl.GET_STATUS, b);
    return b[0]!;
  }
  /** VHOST_VDPA_SET_STATUS (0 resets the device; otherwise the kernel refuses removing bits with EINVAL). */
  setStatus(status: number): void {
    this.ioctl('VHOST_VDPA_SET_STATUS', VdpaIoctl.SET_STATUS, Uint8Array.of(status & 0xff));
  }
  /** VHOST_GET_FEATURES (64 bits). */
  features(): bigint {
    return this.u64('VHOST_GET_FEATURES', VdpaIoctl.GET_FEATURES);
  }
  /** VHOST_SET_FEATURES (before FEATURES_OK; the parent refuses a set it cannot work with: EINVAL). */
  setFeatures(f: bigint): void {
    this.setU64('VHOST_SET_FEATURES', VdpaIoctl.SET_FEATURES, f);
  }
  /** VHOST_GET_BACKEND_FEATURES. */
  backendFeatures(): bigint {
    return this.u64('VHOST_GET_BACKEND_FEATURES', VdpaIoctl.GET_BACKEND_FEATURES);
  }
  /** VHOST_SET_BACKEND_FEATURES. */
  setBackendFeatures(f: bigint): void {
    this.setU64('VHOST_SET_BACKEND_FEATURES', VdpaIoctl.SET_BACKEND_FEATURES, f);
  }
  /** VHOST_VDPA_GET_VQS_COUNT. */
  vqsCount(): number {
    return this.u32('VHOST_VDPA_GET_VQS_COUNT', VdpaIoctl.GET_VQS_COUNT);
  }
  /** VHOST_VDPA_GET_CONFIG_SIZE. */
  configSize(): number {
    return this.u32('VHOST_VDPA_GET_CONFIG_SIZE', VdpaIoctl.GET_CONFIG_SIZE);
  }
  /** VHOST_VDPA_GET_VRING_NUM: the largest ring size. */
  vringNumMax(): number {
    const b = new Uint8Array(2);
    this.ioctl('VHOST_VDPA_GET_VRING_NUM', VdpaIoctl.GET_VRING_NUM, b);
    return new DataView(b.buffer).getUint16(0, true);
  }
  /** VHOST_VDPA_GET_IOVA_RANGE: first and last IOVA the device can map (inclusive). */
  iovaRange(): { first: bigint; last: bigint } {
    const s = new Struct(VdpaIovaRange);
    this.ioctl('VHOST_VDPA_GET_IOVA_RANGE', VdpaIoctl.GET_IOVA_RANGE, s.bytes);
    return { first: s.get64('first'), last: s.get64('last') };
  }
  /** VHOST_VDPA_GET_CONFIG: `len` bytes of device configuration at `off`. */
  readConfig(off: number, len: number): Uint8Array {
    const b = new Uint8Array(VdpaConfig.size + len);
    new Struct(VdpaConfig, b).set('off', off).set('len', len);
    this.ioctl('VHOST_VDPA_GET_CONFIG', VdpaIoctl.GET_CONFIG, b);
    return b.slice(VdpaConfig.size);
  }
  /** VHOST_VDPA_SET_CONFIG: writes `bytes` at `off`. */
  writeConfig(off: number, bytes: Uint8Array): void {
    const b = new Uint8Array(VdpaConfig.size + bytes.length);
    new Struct(VdpaConfig, b).set('off', off).set('len', bytes.length);
    b.set(bytes, VdpaConfig.size);
    this.ioctl('VHOST_VDPA_SET_CONFIG', VdpaIoctl.SET_CONFIG, b);
  }
  /** VHOST_SET_VRING_NUM. */
  setVringNum(q: number, num: number): void {
    this.vringState('VHOST_SET_VRING_NUM', VdpaIoctl.SET_VRING_NUM, q, num);
  }
  /** VHOST_SET_VRING_ADDR with the rings' IOVAs (flags 0: no logging). */
  setVringAddr(q: number, a: { desc: bigint; driver: bigint; device: bigint }): void {
    const s = new Struct(VringAddr).set('index', q).set('flags', 0)
      .set('desc_user_addr', a.desc).set('avail_user_addr', a.driver).set('used_user_addr', a.device).set('log_guest_addr', 0n);
    this.ioctl('VHOST_SET_VRING_ADDR', VdpaIoctl.SET_VRING_ADDR, s.bytes);
  }
  /** VHOST_SET_VRING_BASE (`num` encoded by uapi.ts encodeVringBase). */
  setVringBase(q: number, num: number): void {
    this.vringState('VHOST_SET_VRING_BASE', VdpaIoctl.SET_VRING_BASE, q, num);
  }
  /** VHOST_GET_VRING_BASE: the raw `num` (decode with uapi.ts decodeVringBase). */
  vringBase(q: number): number {
    return this.vringState('VHOST_GET_VRING_BASE', VdpaIoctl.GET_VRING_BASE, q, 0);
  }
  /** VHOST_SET_VRING_KICK / VHOST_SET_VRING_CALL: an eventfd, or -1 to unbind. */
  setVringFile(which: 'kick' | 'call', q: number, fd: number): void {
    const s = new Struct(VringFile).set('index', q).set('fd', fd);
    if (which === 'kick') this.ioctl('VHOST_SET_VRING_KICK', VdpaIoctl.SET_VRING_KICK, s.bytes);
    else this.ioctl('VHOST_SET_VRING_CALL', VdpaIoctl.SET_VRING_CALL, s.bytes);
  }
  /** VHOST_VDPA_SET_VRING_ENABLE. */
  setVringEnable(q: number, enable: boolean): void {
    this.vringState('VHOST_VDPA_SET_VRING_ENABLE', VdpaIoctl.SET_VRING_ENABLE, q, enable ? 1 : 0);
  }
  /** VHOST_VDPA_SET_CONFIG_CALL: an eventfd, or -1. */
  setConfigCall(fd: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, fd, true);
    this.ioctl('VHOST_VDPA_SET_CONFIG_CALL', VdpaIoctl.SET_CONFIG_CALL, b);
  }
  /** VHOST_VDPA_SUSPEND. */
  suspend(): void {
    this.ioctl('VHOST_VDPA_SUSPEND', VdpaIoctl.SUSPEND);
  }
  /** VHOST_VDPA_RESUME. */
  resume(): void {
    this.ioctl('VHOST_VDPA_RESUME', VdpaIoctl.RESUME);
  }

  /**
   * Writes one struct vhost_msg_v2 to the fd (drivers/vhost/vhost.c vhost_chr_write_iter, which
   * answers every refusal of the message handler with EFAULT). Throws E_VDPA_IOTLB (DmaError)
   * naming the message when the device refuses it, E_CLOSED after close().
   */
  iotlb(m: IotlbRequest): void {
    if (!this.open_) throw new UsageError('E_CLOSED', `${this.address}: IOTLB message after the device was closed`, 'open the device again');
    const what = m.type === IotlbType.UPDATE ? `UPDATE iova 0x${(m.iova ?? 0n).toString(16)} size 0x${(m.size ?? 0n).toString(16)}`
      : m.type === IotlbType.INVALIDATE ? `INVALIDATE iova 0x${(m.iova ?? 0n).toString(16)} size 0x${(m.size ?? 0n).toString(16)}`
        : m.type === IotlbType.BATCH_BEGIN ? 'BATCH_BEGIN' : m.type === IotlbType.BATCH_END ? 'BATCH_END' : `type ${m.type}`;
    const msg = encodeMsgV2(m);
    let n: number;
    try {
      n = fs.writeSync(this.fd, msg);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e);
      throw new DmaError('E_VDPA_IOTLB', `${this.address}: the device's IOTLB refused ${what} (${code})`,
        'the range must lie in VHOST_VDPA_GET_IOVA_RANGE (VhostVdpaTransport.iovaRange), not overlap a mapping, and be memory this process shares (a memfd mapping); where the kernel pins the pages (vdpa use_va off, or a hardware parent), the locked-memory limit counts too: raise `ulimit -l` or open with a smaller ?arena=MiB',
        { cause: e });
    }
    if (n !== msg.length) throw new DmaError('E_VDPA_IOTLB', `${this.address}: the device took ${n} of ${msg.length} bytes of IOTLB ${what}`,
      'the vhost-vdpa device took part of an IOTLB message (a kernel or parent-driver fault); close it and open it again');
  }

  /** Closes the fd (the kernel resets the device and drops its IOTLB); idempotent. */
  close(): void {
    if (!this.open_) return;
    this.open_ = false;
    try {
      libc.close(this.fd);
    } catch {
      // already gone: nothing left to release
    }
  }
}

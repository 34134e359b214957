// Runs inside the test VM's vdpa profile (scripts/vm/vdpa.mjs): reports the kernel, the vdpa
// management devices (`vdpa -j mgmtdev show`), the devices /etc/uvirtio/setup created
// (/run/vdpa-devices.json), and for each /dev/vhost-vdpa-N what the vhost-vdpa ioctls answer.
// The host side is test/vm/vdpa-profile.test.ts.
//
// The ioctl numbers are computed here from include/uapi/linux/vhost.h (Linux 6.12): the transport's
// own table lives in lib/transport/vhost-vdpa/, which this profile test does not depend on.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { SysError } from '../../../lib/sys/errno.js';
import { close, ioctl, O, open } from '../../../lib/sys/libc.js';
import { report, step } from './report.js';

/** include/uapi/asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr; _IOC_READ = 2. */
const VHOST_VIRTIO = 0xaf;
const ior = (nr: number, size: number): number => ((2 << 30) >>> 0) + (size << 16) + (VHOST_VIRTIO << 8) + nr;
/** _IOC_WRITE = 1; _IO has no direction and no size. */
const iow = (nr: number, size: number): number => (1 << 30) + (size << 16) + (VHOST_VIRTIO << 8) + nr;
const io = (nr: number): number => (VHOST_VIRTIO << 8) + nr;
/** include/uapi/linux/vhost.h */
const VHOST_GET_FEATURES = ior(0x00, 8);
const VHOST_GET_BACKEND_FEATURES = ior(0x26, 8);
const VHOST_VDPA_GET_DEVICE_ID = ior(0x70, 4);
const VHOST_VDPA_GET_STATUS = ior(0x71, 1);
const VHOST_VDPA_GET_VRING_NUM = ior(0x76, 2);
const VHOST_VDPA_GET_VQS_COUNT = ior(0x80, 4);
const VHOST_SET_FEATURES = iow(0x00, 8);
const VHOST_VDPA_SET_STATUS = iow(0x72, 1);
const VHOST_VDPA_SUSPEND = io(0x7d);
/** include/uapi/linux/vhost_types.h: VHOST_BACKEND_F_SUSPEND (a bit number). */
const BACKEND_F_SUSPEND = 1n << 4n;
/** VIRTIO 1.2 §2.1 device status bits; §6 VERSION_1 and ACCESS_PLATFORM. */
const S_ACKNOWLEDGE = 1;
const S_DRIVER = 2;
const S_DRIVER_OK = 4;
const S_FEATURES_OK = 8;
const F_BASE = (1n << 32n) | (1n << 33n);

interface DeviceEntry { name: string; mgmtdev: string; deviceId: number; dev: string }

/**
 * On a parent without SUSPEND, VHOST_VDPA_SUSPEND succeeds as a no-op before DRIVER_OK
 * (drivers/vhost/vdpa.c vhost_vdpa_suspend) and fails with EOPNOTSUPP once the device runs: brings
 * it to DRIVER_OK (VERSION_1 | ACCESS_PLATFORM, no queues set up), asks for the suspend, resets.
 */
function suspendWithoutSupport(d: DeviceEntry): Record<string, unknown> {
  const fd = open(d.dev, O.RDWR);
  const errnoOf = (f: () => void): number => {
    try {
      f();
      return 0;
    } catch (e) {
      if (e instanceof SysError) return e.errno;
      throw e;
    }
  };
  const status = new Uint8Array(1);
  const setStatus = (s: number): void => { status[0] = s; ioctl(fd, VHOST_VDPA_SET_STATUS, status, 'VHOST_VDPA_SET_STATUS'); };
  try {
    const beforeDriverOk = errnoOf(() => ioctl(fd, VHOST_VDPA_SUSPEND, undefined, 'VHOST_VDPA_SUSPEND'));
    setStatus(S_ACKNOWLEDGE);
    setStatus(S_ACKNOWLEDGE | S_DRIVER);
    const features = new Uint8Array(8);
    new DataView(features.buffer).setBigUint64(0, F_BASE, true);
    ioctl(fd, VHOST_SET_FEATURES, features, 'VHOST_SET_FEATURES');
    setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    const statusAtDriverOk = Number(query(fd, VHOST_VDPA_GET_STATUS, 1, 'VHOST_VDPA_GET_STATUS'));
    const atDriverOk = errnoOf(() => ioctl(fd, VHOST_VDPA_SUSPEND, undefined, 'VHOST_VDPA_SUSPEND'));
    setStatus(0);
    return { name: d.name, beforeDriverOk, statusAtDriverOk, atDriverOk, statusAfterReset: Number(query(fd, VHOST_VDPA_GET_STATUS, 1, 'VHOST_VDPA_GET_STATUS')) };
  } finally {
    close(fd);
  }
}

function query(fd: number, request: number, size: number, name: string): bigint {
  const buf = new Uint8Array(8);
  ioctl(fd, request, buf, name);
  const view = new DataView(buf.buffer);
  return size === 8 ? view.getBigUint64(0, true) : size === 4 ? BigInt(view.getUint32(0, true))
    : size === 2 ? BigInt(view.getUint16(0, true)) : BigInt(buf[0] ?? 0);
}

async function main(): Promise<void> {
  await step('kernel', () => ({ release: os.release() }));
  await step('mgmtdev', () => {
    const out = JSON.parse(execFileSync('vdpa', ['-j', 'mgmtdev', 'show'], { encoding: 'utf8' })) as { mgmtdev: Record<string, unknown> };
    return { names: Object.keys(out.mgmtdev).sort() };
  });
  const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
  report('devices', { devices });
  for (const d of devices) {
    await step('device', () => {
      const fd = open(d.dev, O.RDWR);
      try {
        let secondOpen = 'opened';
        try {
          close(open(d.dev, O.RDWR));
        } catch (e) {
          secondOpen = e instanceof SysError ? e.errnoName : String(e);
        }
        return {
          name: d.name, dev: d.dev, secondOpen,
          deviceId: Number(query(fd, VHOST_VDPA_GET_DEVICE_ID, 4, 'VHOST_VDPA_GET_DEVICE_ID')),
          backendFeatures: query(fd, VHOST_GET_BACKEND_FEATURES, 8, 'VHOST_GET_BACKEND_FEATURES'),
          features: query(fd, VHOST_GET_FEATURES, 8, 'VHOST_GET_FEATURES'),
          status: Number(query(fd, VHOST_VDPA_GET_STATUS, 1, 'VHOST_VDPA_GET_STATUS')),
          vringNum: Number(query(fd, VHOST_VDPA_GET_VRING_NUM, 2, 'VHOST_VDPA_GET_VRING_NUM')),
          vqs: Number(query(fd, VHOST_VDPA_GET_VQS_COUNT, 4, 'VHOST_VDPA_GET_VQS_COUNT')),
        };
      } finally {
        close(fd);
      }
    });
  }
  for (const d of devices) {
    const fd = open(d.dev, O.RDWR);
    let backend: bigint;
    try {
      backend = query(fd, VHOST_GET_BACKEND_FEATURES, 8, 'VHOST_GET_BACKEND_FEATURES');
    } finally {
      close(fd);
    }
    if (!(backend & BACKEND_F_SUSPEND)) await step('no-suspend', () => suspendWithoutSupport(d));
  }
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

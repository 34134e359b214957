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
/** include/uapi/linux/vhost.h */
const VHOST_GET_FEATURES = ior(0x00, 8);
const VHOST_GET_BACKEND_FEATURES = ior(0x26, 8);
const VHOST_VDPA_GET_DEVICE_ID = ior(0x70, 4);
const VHOST_VDPA_GET_STATUS = ior(0x71, 1);
const VHOST_VDPA_GET_VRING_NUM = ior(0x76, 2);
const VHOST_VDPA_GET_VQS_COUNT = ior(0x80, 4);

interface DeviceEntry { name: string; mgmtdev: string; deviceId: number; dev: string }

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
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

// The vhost-vdpa transport's untrusted inputs that need no device: addresses (parse, options,
// shareWith), paths and fds checked before anything is opened, dev_t decoding, /proc/devices
// parsing; and its state facility against a fake device (no SUSPEND, a ring that never drains,
// a refused restore, packed state, RESUME).
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { formatAddress, parseAddress } from '../../lib/address.js';
import { SysError } from '../../lib/sys/errno.js';
import { checkVdpaPath, devMajor, devMinor, vhostVdpaMajor, VdpaFd, type VdpaFd as VdpaFdType } from '../../lib/transport/vhost-vdpa/device.js';
import { open as openVdpa } from '../../lib/transport/vhost-vdpa/open.js';
import { VdpaSuspendFacility, type VdpaRings } from '../../lib/transport/vhost-vdpa/state.js';
import type { StateContext, VqState } from '../../lib/transport/state.js';
import { codeOf, codeOfAsync } from '../support/codes.js';
import { tempDir } from '../support/tmp.js';

t.test('vhost-vdpa: addresses', async (t) => {
  t.same(parseAddress('vhost-vdpa:/dev/vhost-vdpa-0'), { scheme: 'vhost-vdpa', target: '/dev/vhost-vdpa-0', options: {} });
  t.same(parseAddress('vhost-vdpa:/dev/vhost-vdpa-3?arena=16&suspend=0').options, { arena: '16', suspend: '0' });
  t.equal(formatAddress(parseAddress('vhost-vdpa:/dev/vhost-vdpa-1?suspend=0')), 'vhost-vdpa:/dev/vhost-vdpa-1?suspend=0');
  for (const bad of ['vhost-vdpa:', 'vhost-vdpa:dev/vhost-vdpa-0', 'vhost-vdpa:./vhost-vdpa-0', 'vdpa:/dev/vhost-vdpa-0']) {
    t.equal(codeOf(() => parseAddress(bad)), 'E_BAD_ADDRESS', `"${bad}" → E_BAD_ADDRESS`);
  }
  const a = (options: Record<string, string>): { address: string; target: string; options: Record<string, string> } =>
    ({ address: 'vhost-vdpa:/dev/vhost-vdpa-0', target: '/dev/vhost-vdpa-0', options });
  t.equal(codeOf(() => openVdpa(a({ queues: '4' }))), 'E_BAD_ADDRESS', 'an option it does not take, before anything is opened');
  t.equal(codeOf(() => openVdpa(a({ arena: '0' }))), 'E_BAD_ADDRESS', 'arena=0');
  t.equal(codeOf(() => openVdpa(a({ arena: '99999' }))), 'E_BAD_ADDRESS', 'arena beyond 4096 MiB');
  t.equal(codeOf(() => openVdpa(a({ suspend: 'no' }))), 'E_BAD_ADDRESS', 'suspend takes 0 or 1');
  t.equal(codeOf(() => openVdpa(a({}), { address: 'sim:blk', transport: {} })), 'E_BAD_ADDRESS', 'shareWith another kind of device');
});

t.test('dev_t → major, minor (glibc gnu_dev_major/minor)', async (t) => {
  t.same([devMajor(0x103), devMinor(0x103)], [1, 3], '/dev/null is 1:3');
  const rdev = (300 & 0xff) | (245 << 8) | ((300 & ~0xff) << 12);
  t.same([devMajor(rdev), devMinor(rdev)], [245, 300], 'a minor above 255');
  t.same([devMajor(fs.statSync('/dev/null').rdev), devMinor(fs.statSync('/dev/null').rdev)], [1, 3], 'what stat(2) gives for /dev/null');
});

t.test('/proc/devices: the major named vhost-vdpa among the character devices', async (t) => {
  const dir = tempDir('uvirtio-vdpa-');
  const file = path.join(dir, 'devices');
  fs.writeFileSync(file, 'Character devices:\n  1 mem\n 10 misc\n245 vhost-vdpa\n246 vhost-vdpa-x\n\nBlock devices:\n  8 sd\n247 vhost-vdpa\n');
  t.equal(vhostVdpaMajor(file), 245, 'the character device, not a block device of the same name nor a longer name');
  fs.writeFileSync(file, 'Character devices:\n  1 mem\n\nBlock devices:\n245 vhost-vdpa\n');
  t.equal(vhostVdpaMajor(file), null, 'only among block devices: not loaded');
  t.equal(vhostVdpaMajor(path.join(dir, 'missing')), null, 'no /proc/devices');
});

t.test('paths and fds that are not vhost-vdpa devices are refused before they are opened', async (t) => {
  const dir = tempDir('uvirtio-vdpa-');
  fs.writeFileSync(path.join(dir, 'file'), 'not a device');
  t.equal(codeOf(() => checkVdpaPath(path.join(dir, 'missing'), 'x')), 'E_NO_DEVICE', 'a missing path: E_NO_DEVICE');
  t.equal(codeOf(() => checkVdpaPath(path.join(dir, 'file'), 'x')), 'E_NOT_VIRTIO', 'a regular file: E_NOT_VIRTIO');
  t.equal(codeOf(() => checkVdpaPath(dir, 'x')), 'E_NOT_VIRTIO', 'a directory: E_NOT_VIRTIO');
  t.equal(codeOf(() => checkVdpaPath('/dev/null', 'x')), 'E_NOT_VIRTIO', '/dev/null (major 1): E_NOT_VIRTIO');
  t.equal(codeOf(() => VdpaFd.open('x', '/dev/zero')), 'E_NOT_VIRTIO', 'VdpaFd.open checks first: /dev/zero is never opened');
  t.equal(codeOf(() => VdpaFd.adopt('x', 1 << 20)), 'E_INVALID_ARGUMENT', 'an fd that is not open');
  t.equal(codeOf(() => VdpaFd.adopt('x', -1)), 'E_INVALID_ARGUMENT', 'a negative fd');
  t.equal(codeOf(() => VdpaFd.adopt('x', 1.5)), 'E_INVALID_ARGUMENT', 'a fractional fd');
  const fd = fs.openSync('/dev/null', 'r');
  t.equal(codeOf(() => VdpaFd.adopt('x', fd)), 'E_NOT_VIRTIO', 'an open fd of another device');
  fs.closeSync(fd);
});

/** A fake device for the facility: ring state as the test sets it. */
function fakeRings(o: { suspend?: boolean; resume?: boolean; packed?: boolean; base?: number; used?: () => number; suspendErrno?: number }): {
  rings: VdpaRings; calls: string[]; bases: Map<number, VqState>;
} {
  const calls: string[] = [];
  const bases = new Map<number, VqState>();
  const fd = {
    suspend: () => {
      calls.push('suspend');
      if (o.suspendErrno !== undefined) throw new SysError('ioctl', o.suspendErrno, 'VHOST_VDPA_SUSPEND');
    },
    resume: () => calls.push('resume'),
    vringBase: (q: number) => {
      calls.push(`base ${q}`);
      return o.base ?? 0;
    },
  } as unknown as VdpaFdType;
  const rings: VdpaRings = {
    address: 'vhost-vdpa:/dev/fake', canSuspend: o.suspend ?? true, canResume: o.resume ?? true,
    fd: () => fd, packed: () => o.packed ?? false,
    ring: () => ({ availIdx: () => 0, usedIdx: () => (o.used ? o.used() : 0), setUsedIdx: () => undefined }),
    setBase: (q, s) => bases.set(q, s), kickAll: () => calls.push('kick'),
  };
  return { rings, calls, bases };
}

const ctx = (queues: number[] = [0]): StateContext => ({
  address: 'vhost-vdpa:/dev/fake', layout: 'split', queues, inFlight: () => 0, drains: () => true,
  ringDerived: () => ({ avail: 0, used: 0 }), failure: () => null,
});

t.test('state facility: SUSPEND, GET_VRING_BASE, restore, resume', async (t) => {
  const none = new VdpaSuspendFacility(fakeRings({ suspend: false }).rings);
  t.equal(await codeOfAsync(() => none.stop(ctx(), 100)), 'E_STATE_UNSUPPORTED', 'a parent without SUSPEND: E_STATE_UNSUPPORTED');
  const eop = new VdpaSuspendFacility(fakeRings({ suspendErrno: 95 /* EOPNOTSUPP */ }).rings);
  t.equal(await codeOfAsync(() => eop.stop(ctx(), 100)), 'E_STATE_UNSUPPORTED', 'SUSPEND refused with EOPNOTSUPP: E_STATE_UNSUPPORTED');
  t.equal(new VdpaSuspendFacility(fakeRings({ resume: false }).rings).resume, undefined, 'no resume() without RESUME');

  const f = fakeRings({ base: 42, used: () => 42 });
  const fac = new VdpaSuspendFacility(f.rings);
  t.equal(codeOf(() => fac.read(ctx(), 0)), 'E_STATE_NOT_STOPPED', 'no state before a stop');
  await fac.stop(ctx([0, 1]), 100);
  t.same(f.calls, ['suspend', 'base 0', 'base 1'], 'SUSPEND, then GET_VRING_BASE per queue in order');
  t.same(fac.read(ctx(), 0), { avail: 42, used: 42 }, 'split: avail from GET_VRING_BASE, used from used->idx');
  await fac.resume!(ctx(), 100);
  t.same(f.calls.slice(-2), ['resume', 'kick'], 'resume: VHOST_VDPA_RESUME, then a kick');

  let used = 40;
  const slow = new VdpaSuspendFacility(fakeRings({ base: 42, used: () => used }).rings);
  setTimeout(() => { used = 42; }, 30);
  await slow.stop(ctx(), 2000);
  t.same(slow.read(ctx(), 0), { avail: 42, used: 42 }, 'waits until the fetched requests complete');
  const stuck = new VdpaSuspendFacility(fakeRings({ base: 42, used: () => 40 }).rings);
  t.equal(await codeOfAsync(() => stuck.stop(ctx(), 50)), 'E_STOP_TIMEOUT', 'fetched requests that never complete: E_STOP_TIMEOUT within the bound');

  const packed = new VdpaSuspendFacility(fakeRings({ packed: true, base: 0x8005_8003 }).rings);
  await packed.stop(ctx(), 100);
  t.same(packed.read(ctx(), 0), { avail: 0x8003, used: 0x8005 }, 'packed: both halves of num');

  t.equal(codeOf(() => fac.restore(0, { avail: 10, used: 7 })), 'E_STATE_REFUSED', 'a split state with unfinished requests cannot be restored');
  fac.restore(0, { avail: 10, used: 10 });
  t.same(f.bases.get(0), { avail: 10, used: 10 }, 'restore: SET_VRING_BASE for the next start');
});

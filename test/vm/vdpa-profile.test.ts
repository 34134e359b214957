// VM tier, vdpa profile (scripts/vm/vdpa.mjs, docs/test-vm.md#the-vdpa-profile): Debian's 6.12 kernel
// with vringh and the vDPA simulators built out of tree, two vdpasim_blk and two vdpasim_net devices
// bound to vhost_vdpa. What the vhost-vdpa transport's tests rely on: the kernel, the management
// devices, four /dev/vhost-vdpa-N that open O_RDWR (and only once at a time), the virtio device IDs
// (VHOST_VDPA_GET_DEVICE_ID: blk 2, net 1), and SUSPEND + RESUME among the backend features.
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

/** include/uapi/linux/vhost_types.h: VHOST_BACKEND_F_* are bit numbers. */
const BACKEND_F_IOTLB_MSG_V2 = 1n << 0x1n;
const BACKEND_F_IOTLB_BATCH = 1n << 0x2n;
const BACKEND_F_SUSPEND = 1n << 0x4n;
const BACKEND_F_RESUME = 1n << 0x5n;
/** VIRTIO 1.2 §6: VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM. */
const VERSION_1 = 1n << 32n;
const ACCESS_PLATFORM = 1n << 33n;

const EXPECTED = [
  { name: 'blk0', mgmtdev: 'vdpasim_blk', deviceId: 2, vqs: 1 },
  { name: 'blk1', mgmtdev: 'vdpasim_blk', deviceId: 2, vqs: 1 },
  { name: 'net0', mgmtdev: 'vdpasim_net', deviceId: 1, vqs: 3 },
  { name: 'net1', mgmtdev: 'vdpasim_net', deviceId: 1, vqs: 3 },
];

const why = vmUnavailable();
t.test('vdpa profile: vdpa_sim devices on /dev/vhost-vdpa-N (Linux 6.12)', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-probe.js');
  const retried = /retrying once/.test(run.stderr);
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot${retried ? '; the boot was retried once' : ''}`);
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  t.match(resultsOf(run, 'kernel')[0], { ok: true, release: /^6\.12\./ }, 'the guest runs a 6.12 kernel');
  t.same(resultsOf(run, 'mgmtdev')[0]?.names, ['vdpasim_blk', 'vdpasim_net'], 'both simulator management devices are registered');

  const listed = (resultsOf(run, 'devices')[0]?.devices ?? []) as { name: string; mgmtdev: string; deviceId: number; driver: string; dev: string }[];
  t.same(listed.map((d) => [d.name, d.mgmtdev, d.deviceId, d.driver]), EXPECTED.map((e) => [e.name, e.mgmtdev, e.deviceId, 'vhost_vdpa']),
    '/run/vdpa-devices.json lists blk0, blk1, net0, net1, each bound to vhost_vdpa');
  t.same([...new Set(listed.map((d) => d.dev))].sort(), ['/dev/vhost-vdpa-0', '/dev/vhost-vdpa-1', '/dev/vhost-vdpa-2', '/dev/vhost-vdpa-3'],
    'each has its own /dev/vhost-vdpa-N, 0..3');

  for (const e of EXPECTED) {
    t.test(`${e.name} (${e.mgmtdev})`, async (t) => {
      const r = resultsOf(run, 'device').find((x) => x.name === e.name);
      t.match(r, { ok: true, dev: listed.find((d) => d.name === e.name)?.dev }, `opens O_RDWR: ${r?.error ?? 'ok'}`);
      t.equal(r?.secondOpen, 'EBUSY', 'a second open while the first is held is refused with EBUSY');
      t.equal(r?.deviceId, e.deviceId, `VHOST_VDPA_GET_DEVICE_ID answers ${e.deviceId}`);
      t.equal(r?.vqs, e.vqs, `VHOST_VDPA_GET_VQS_COUNT answers ${e.vqs}`);
      t.equal(r?.vringNum, 256, 'VHOST_VDPA_GET_VRING_NUM answers 256');
      t.equal(r?.status, 0, 'the device status is 0 (reset) after boot');
      const backend = BigInt((r?.backendFeatures as string | undefined) ?? '0');
      for (const [bit, name] of [[BACKEND_F_IOTLB_MSG_V2, 'IOTLB_MSG_V2'], [BACKEND_F_IOTLB_BATCH, 'IOTLB_BATCH'],
        [BACKEND_F_SUSPEND, 'SUSPEND'], [BACKEND_F_RESUME, 'RESUME']] as const) {
        t.ok(backend & bit, `VHOST_GET_BACKEND_FEATURES offers ${name} (0x${backend.toString(16)})`);
      }
      const features = BigInt((r?.features as string | undefined) ?? '0');
      t.ok(features & VERSION_1, 'VHOST_GET_FEATURES offers VERSION_1');
      t.ok(features & ACCESS_PLATFORM, 'VHOST_GET_FEATURES offers ACCESS_PLATFORM (the device goes through the IOTLB)');
    });
  }
  fs.rmSync(run.workDir, { recursive: true, force: true });
});

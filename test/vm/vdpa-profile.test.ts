// VM tier, vdpa profile (scripts/vm/vdpa.mjs, docs/test-vm.md#the-vdpa-profile): Debian's 6.12 kernel
// with vringh and the vDPA simulators built out of tree, two vdpasim_blk and two vdpasim_net devices
// bound to vhost_vdpa. What the vhost-vdpa transport's tests rely on: the kernel, the management
// devices, four /dev/vhost-vdpa-N that open O_RDWR (and only once at a time), the virtio device IDs
// (VHOST_VDPA_GET_DEVICE_ID: blk 2, net 1), and SUSPEND + RESUME among the backend features.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { PROJECT, resultsOf, runInVm, vmUnavailable } from './vm-run.js';
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

const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * Why the vdpa profile cannot be built here, or null: it needs a 6.12 kernel, either already built
 * in the cache (scripts/vm/vdpa.mjs: .cache/vm/vdpa/<version>/ready) or named by the apt lists
 * (linux-image-6.12-amd64, bookworm-security), and gcc + make for the out-of-tree modules.
 */
function vdpaUnavailable(): string | null {
  const cache = path.join(process.env.UVIRTIO_VM_CACHE ?? path.join(PROJECT, '.cache', 'vm'), 'vdpa');
  const built = fs.existsSync(cache) && fs.readdirSync(cache).some((v) => fs.existsSync(path.join(cache, v, 'ready')));
  if (built) return null;
  for (const cmd of ['gcc', 'make', 'apt-get', 'dpkg-deb', 'modinfo']) {
    if (!onPath(cmd)) return `${cmd} not found: the vdpa profile builds its modules at image time (run scripts/vm/install-deps.sh)`;
  }
  if (process.env.UVIRTIO_VM_VDPA_KERNEL) return null;
  const apt = spawnSync('apt-cache', ['depends', 'linux-image-6.12-amd64'], { encoding: 'utf8' });
  if (!/Depends: linux-image-6\.12\./.test(apt.stdout ?? '')) {
    return 'no 6.12 kernel in the apt lists (linux-image-6.12-amd64 from bookworm-security; run scripts/vm/install-deps.sh)';
  }
  return null;
}

const why = vmUnavailable() ?? vdpaUnavailable();
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

// The 6.12 guest sometimes panics early under TCG with two vCPUs (docs/test-vm.md): the runner kills
// a boot whose console shows no UVIRTIO-RUN within UVIRTIO_VM_BOOT_TIMEOUT seconds, retries it once
// and says so. A bound of 0.3 s is shorter than any boot (QEMU alone takes longer to load the initrd).
t.test('a boot that never reaches the command is retried once, reported, then fails', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'echo reached', { env: { UVIRTIO_VM_BOOT_TIMEOUT: '0.3' } });
  t.equal(run.status, 124, 'the runner exits 124 (the command never ran)');
  t.notMatch(run.output, /reached/, 'the command did not run');
  t.match(run.stderr, /boot 1 never reached the guest command \(no UVIRTIO-RUN within 0\.3 s \(UVIRTIO_VM_BOOT_TIMEOUT\), killed\); retrying once/,
    'the first boot is reported as killed and retried');
  t.match(run.stderr, /boot 2 never reached the guest command/, 'the second boot ran and is reported');
  t.notMatch(run.stderr, /boot 3/, 'no third boot');
  fs.rmSync(run.workDir, { recursive: true, force: true });
});

// Module parameters from the kernel command line (the runner's --kernel-arg, kernelArgs here) reach
// the out-of-tree modules' insmod: vdpa_sim.use_va=0 makes vhost-vdpa pin user pages (the IOTLB's
// physical-address path, bounded by RLIMIT_MEMLOCK) and batch_mapping=0 gives per-update
// dma_map/dma_unmap instead of set_map (drivers/vdpa/vdpa_sim/vdpa_sim.c module parameters);
// vdpa_sim_blk.shared_backend=1 gives blk0 and blk1 one disk (vdpa_sim_blk.c).
t.test('vdpa_sim module parameters from the kernel command line', prerequisite(why), async (t) => {
  const params = ['vdpa_sim/parameters/use_va', 'vdpa_sim/parameters/batch_mapping', 'vdpa_sim_blk/parameters/shared_backend'];
  const run = await runInVm('vdpa', `cd /sys/module && cat ${params.join(' ')}; grep -c '"name"' /run/vdpa-devices.json`,
    { kernelArgs: ['vdpa_sim.use_va=0', 'vdpa_sim.batch_mapping=0', 'vdpa_sim_blk.shared_backend=1'] });
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest command exits 0');
  t.same(run.output.trim().split(/\s+/), ['N', '0', 'Y', '4'], 'use_va N, batch_mapping 0, shared_backend Y, and the four devices are still created');
  fs.rmSync(run.workDir, { recursive: true, force: true });
});

// The parent without SUSPEND (kernel argument uvirtio.vduse=1): vduse0, a VDUSE blk device made by
// scripts/vm/vduse-blk.c, whose control requests that program answers. VDUSE has no suspend op, so
// vhost-vdpa offers no SUSPEND/RESUME and refuses VHOST_VDPA_SUSPEND with EOPNOTSUPP at DRIVER_OK.
t.test('vdpa profile with uvirtio.vduse=1: vduse0, a parent without SUSPEND', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-probe.js', { kernelArgs: ['uvirtio.vduse=1'] });
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  t.same(resultsOf(run, 'mgmtdev')[0]?.names, ['vdpasim_blk', 'vdpasim_net', 'vduse'], 'the vduse management device is registered too');
  const listed = (resultsOf(run, 'devices')[0]?.devices ?? []) as { name: string; mgmtdev: string; deviceId: number; driver: string; dev: string }[];
  t.same(listed.map((d) => [d.name, d.mgmtdev, d.deviceId, d.driver, d.dev]).at(-1), ['vduse0', 'vduse', 2, 'vhost_vdpa', '/dev/vhost-vdpa-4'],
    'vduse0 comes last, a blk device on vhost_vdpa, /dev/vhost-vdpa-4');
  t.same(listed.slice(0, 4).map((d) => d.name), EXPECTED.map((e) => e.name), 'the four vdpa_sim devices are unchanged');
  const r = resultsOf(run, 'device').find((x) => x.name === 'vduse0');
  t.match(r, { ok: true, deviceId: 2, vqs: 1, vringNum: 256, status: 0, secondOpen: 'EBUSY' }, `vduse0 answers the probe: ${r?.error ?? 'ok'}`);
  const backend = BigInt((r?.backendFeatures as string | undefined) ?? '0');
  t.ok(backend & BACKEND_F_IOTLB_MSG_V2, `vduse0 offers IOTLB_MSG_V2 (0x${backend.toString(16)})`);
  t.notOk(backend & BACKEND_F_SUSPEND, 'vduse0 does not offer SUSPEND');
  t.notOk(backend & BACKEND_F_RESUME, 'vduse0 does not offer RESUME');
  const EOPNOTSUPP = 95;
  t.same(resultsOf(run, 'no-suspend'), [{ check: 'no-suspend', ok: true, name: 'vduse0', beforeDriverOk: 0, statusAtDriverOk: 0xf, atDriverOk: EOPNOTSUPP, statusAfterReset: 0 }],
    'only vduse0 lacks SUSPEND; VHOST_VDPA_SUSPEND is a no-op before DRIVER_OK and EOPNOTSUPP at DRIVER_OK; the reset goes through');
  fs.rmSync(run.workDir, { recursive: true, force: true });
});

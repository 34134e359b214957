// Runs inside the test VM's vdpa profile: the `uvirtio` command on vhost-vdpa: addresses (list,
// info, rehearse on one device and between two, a session attach → stop → snapshot → reinit --to
// → detach --verify), and hostile inputs through the API: paths and fds that are not vhost-vdpa
// devices, a device another opener holds, a driver of the wrong type, an IOTLB message the device
// refuses. The host side is test/vm/vdpa-cli.test.ts.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { BlkDriver } from '../../../drivers/blk/index.js';
import { NetDriver } from '../../../drivers/net/index.js';
import { openTransport } from '../../../lib/open.js';
import * as libc from '../../../lib/sys/libc.js';
import { VdpaFd } from '../../../lib/transport/vhost-vdpa/device.js';
import { VhostVdpaTransport } from '../../../lib/transport/vhost-vdpa/transport.js';
import { BackendFeature, IotlbAccess, IotlbType, VdpaIoctl } from '../../../lib/transport/vhost-vdpa/uapi.js';
import { expectError, expectErrorAsync, report } from './report.js';

interface DeviceEntry { name: string; dev: string }
const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
const pathOf = (name: string): string => devices.find((d) => d.name === name)!.dev;
const BLK0 = `vhost-vdpa:${pathOf('blk0')}`;
const NET0 = `vhost-vdpa:${pathOf('net0')}`;
const NET1 = `vhost-vdpa:${pathOf('net1')}`;

function uvirtio(name: string, args: string[]): void {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['bin/uvirtio.js', ...args], { encoding: 'utf8', timeout: 120_000 });
  let json: unknown = null;
  try {
    json = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
  } catch {
    json = null;
  }
  report('cli', { name, args, status: r.status, json, stdout: r.stdout.slice(-1500), stderr: r.stderr.slice(-1500), ms: Date.now() - t0 });
}

async function main(): Promise<void> {
  report('devices', { devices });
  uvirtio('list', ['list', '--json']);
  uvirtio('list-text', ['list']);
  uvirtio('info-blk', ['info', BLK0, '--json']);
  uvirtio('info-net', ['info', NET0, '--json']);
  uvirtio('rehearse-blk', ['rehearse', '--device', BLK0, '--cycles', '5', '--inflight', '8', '--json']);
  // Not `rehearse --device BLK0 --to BLK1`: each vdpa_sim_blk has its own RAM disk (unless loaded with
  // shared_backend=1), so the verifier, reading back from the target, would miss what the source
  // wrote. test/vm/guest/vdpa-blk.ts checks a blk move across both disks instead.
  uvirtio('rehearse-net-to', ['rehearse', '--device', NET0, '--to', NET1, '--cycles', '4', '--json']);
  uvirtio('rehearse-to-sim', ['rehearse', '--device', BLK0, '--to', 'sim:blk', '--cycles', '1', '--json']);
  uvirtio('attach', ['attach', NET0, '--name', 'vn', '--traffic', '8', '--json']);
  uvirtio('stop', ['stop', '--session', 'vn', '--json']);
  uvirtio('snapshot', ['snapshot', '--session', 'vn', '--out', '/tmp/vn.json', '--json']);
  uvirtio('reinit', ['reinit', '--session', 'vn', '--from', '/tmp/vn.json', '--to', NET1, '--json']);
  uvirtio('detach', ['detach', '--session', 'vn', '--verify', '--json']);
  uvirtio('attach-blk', ['attach', BLK0, '--name', 'vb', '--traffic', '8', '--json']);
  uvirtio('stop-blk', ['stop', '--session', 'vb', '--json']);
  uvirtio('snapshot-blk', ['snapshot', '--session', 'vb', '--out', '/tmp/vb.json', '--json']);
  uvirtio('reinit-blk', ['reinit', '--session', 'vb', '--from', '/tmp/vb.json', '--json']);
  uvirtio('detach-blk', ['detach', '--session', 'vb', '--verify', '--json']);
  uvirtio('info-null', ['info', 'vhost-vdpa:/dev/null', '--json']);
  uvirtio('info-missing', ['info', 'vhost-vdpa:/dev/vhost-vdpa-99', '--json']);
  uvirtio('info-relative', ['info', 'vhost-vdpa:dev/vhost-vdpa-0', '--json']);
  uvirtio('info-option', ['info', `${BLK0}?queues=4`, '--json']);

  // ---- hostile inputs through the API ----
  fs.writeFileSync('/tmp/not-a-device', 'x');
  expectError('path-regular-file', () => VhostVdpaTransport.open('vhost-vdpa:/tmp/not-a-device', '/tmp/not-a-device'));
  expectError('path-directory', () => VhostVdpaTransport.open('vhost-vdpa:/dev', '/dev'));
  expectError('path-other-chardev', () => VhostVdpaTransport.open('vhost-vdpa:/dev/zero', '/dev/zero'));
  expectError('fd-not-open', () => VhostVdpaTransport.open('vhost-vdpa:fd', { fd: 987_654 }));
  const nullFd = libc.open('/dev/null', libc.O.RDWR);
  expectError('fd-not-vdpa', () => VhostVdpaTransport.open('vhost-vdpa:fd', { fd: nullFd }));
  libc.close(nullFd);
  expectError('fd-negative', () => VhostVdpaTransport.open('vhost-vdpa:fd', { fd: -1 }));

  const held = await openTransport(BLK0);
  await expectErrorAsync('in-use', () => openTransport(BLK0));
  held.transport.close();
  // An fd this process opened itself is adopted (and owned from then on).
  const own = libc.open(pathOf('blk0'), libc.O.RDWR);
  libc.ioctl(own, VdpaIoctl.SET_OWNER, undefined, 'VHOST_SET_OWNER');
  const adopted = VhostVdpaTransport.open('vhost-vdpa:adopted', { fd: own });
  report('adopted', { deviceType: adopted.deviceType, numQueues: adopted.numQueues });
  adopted.close();

  const net0 = await openTransport(NET0);
  await expectErrorAsync('blk-on-net', () => BlkDriver.open(net0.transport));
  net0.transport.close();
  const blk0 = await openTransport(BLK0);
  await expectErrorAsync('net-on-blk', () => NetDriver.open(blk0.transport));
  blk0.transport.close();

  // The IOTLB refuses an update that overlaps the arena the transport mapped, and one of size 0.
  const t = VhostVdpaTransport.open(BLK0, pathOf('blk0'));
  try {
    const dev = (t as unknown as { dev: VdpaFd }).dev;
    expectError('iotlb-overlap', () => dev.iotlb({ type: IotlbType.UPDATE, iova: t.dma.guestBase, size: 4096n, uaddr: t.dma.userBase, perm: IotlbAccess.RW }));
    expectError('iotlb-empty', () => dev.iotlb({ type: IotlbType.UPDATE, iova: 0n, size: 0n, uaddr: t.dma.userBase, perm: IotlbAccess.RW }));
    report('iotlb-features', { v2: (t.backendFeatures & (1n << BigInt(BackendFeature.IOTLB_MSG_V2))) !== 0n });
  } finally {
    t.close();
  }
  expectError('after-close', () => t.readConfig(0, 4));

  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

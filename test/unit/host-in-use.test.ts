// `uvirtio bind` must not take the host's own disk or network: hostUses() reads sysfs and /proc.
// Here both are a fake tree, so the test means the same on every machine.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostUses } from '../../lib/vfio/in-use.js';
import { tempDir } from '../support/tmp.js';

function fakeHost(): { sys: string; proc: string } {
  const root = tempDir('uvirtio-host-');
  const sys = join(root, 'sys');
  const proc = join(root, 'proc');
  mkdirSync(join(sys, 'bus/pci/devices/0000:00:02.0/virtio0/block/vda'), { recursive: true });
  mkdirSync(join(sys, 'block/vda/vda1'), { recursive: true });
  mkdirSync(join(sys, 'bus/pci/devices/0000:00:03.0/virtio1/net/eth0'), { recursive: true });
  mkdirSync(join(sys, 'class/net/eth0'), { recursive: true });
  mkdirSync(join(sys, 'bus/pci/devices/0000:00:04.0/virtio2/block/vdb'), { recursive: true });
  mkdirSync(join(sys, 'block/vdb'), { recursive: true });
  mkdirSync(proc, { recursive: true });
  writeFileSync(join(proc, 'mounts'), 'sysfs /sys sysfs rw 0 0\n/dev/vda1 / ext4 rw 0 0\n');
  writeFileSync(join(proc, 'swaps'), 'Filename Type Size Used Priority\n');
  writeFileSync(join(sys, 'class/net/eth0/operstate'), 'up\n');
  return { sys, proc };
}

t.test('a disk with a mounted partition and an interface that is up are in use; a spare disk is not', async (t) => {
  const host = fakeHost();
  t.same(hostUses('0000:00:02.0', host), ['/dev/vda1 is mounted on /']);
  t.same(hostUses('0000:00:03.0', host), ['network interface eth0 is up']);
  t.same(hostUses('0000:00:04.0', host), [], 'an unmounted disk can be taken');
  t.same(hostUses('0000:00:09.0', host), [], 'a function with no kernel objects can be taken');
  writeFileSync(join(host.proc, 'swaps'), 'Filename Type Size Used Priority\n/dev/vdb partition 1024 0 -2\n');
  t.same(hostUses('0000:00:04.0', host), ['/dev/vdb is in use as swap']);
  writeFileSync(join(host.sys, 'class/net/eth0/operstate'), 'down\n');
  t.same(hostUses('0000:00:03.0', host), [], 'an interface that is down can be taken');
});

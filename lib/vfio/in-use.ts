// Before taking a device away from its kernel driver: is the host using it? A virtio-blk disk with
// a mounted filesystem or active swap, or a virtio-net interface that is up, would take the
// machine's root disk or network with it. `uvirtio bind` refuses such a device unless forced.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const PCI = '/sys/bus/pci/devices';

function children(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Block devices (and their partitions) and network interfaces the kernel made from the function. */
function kernelObjects(bdf: string): { disks: string[]; nets: string[] } {
  const disks: string[] = [];
  const nets: string[] = [];
  for (const v of children(join(PCI, bdf)).filter((n) => n.startsWith('virtio'))) {
    for (const disk of children(join(PCI, bdf, v, 'block'))) {
      disks.push(disk, ...children(join('/sys/block', disk)).filter((p) => p.startsWith(disk)));
    }
    nets.push(...children(join(PCI, bdf, v, 'net')));
  }
  return { disks, nets };
}

/** Human-readable reasons the host is using `bdf`; empty when it is free to take. */
export function hostUses(bdf: string): string[] {
  const { disks, nets } = kernelObjects(bdf);
  const reasons: string[] = [];
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  const mounts = read('/proc/mounts').split('\n').map((l) => l.split(' '));
  const swaps = read('/proc/swaps');
  for (const d of disks) {
    const m = mounts.find((f) => f[0] === `/dev/${d}`);
    if (m) reasons.push(`/dev/${d} is mounted on ${m[1]}`);
    if (swaps.includes(`/dev/${d} `)) reasons.push(`/dev/${d} is in use as swap`);
  }
  for (const n of nets) {
    if (read(join('/sys/class/net', n, 'operstate')).trim() === 'up') reasons.push(`network interface ${n} is up`);
  }
  return reasons;
}

// Before taking a device away from its kernel driver: is the host using it? A virtio-blk disk with
// a mounted filesystem or active swap, or a virtio-net interface that is up, would take the
// machine's root disk or network with it. `uvirtio bind` refuses such a device unless forced.

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Where the kernel's views are (tests point these at a fake tree). */
/** Where sysfs and procfs are mounted (tests point them at a fake tree). */
export interface HostRoots {
  /** sysfs, normally /sys. */
  sys: string;
  /** procfs, normally /proc. */
  proc: string;
}
const HOST: HostRoots = { sys: '/sys', proc: '/proc' };

function children(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Block devices (and their partitions) and network interfaces the kernel made from the function. */
function kernelObjects(bdf: string, r: HostRoots): { disks: string[]; nets: string[] } {
  const fn = join(r.sys, 'bus/pci/devices', bdf);
  const disks: string[] = [];
  const nets: string[] = [];
  for (const v of children(fn).filter((n) => n.startsWith('virtio'))) {
    for (const disk of children(join(fn, v, 'block'))) {
      disks.push(disk, ...children(join(r.sys, 'block', disk)).filter((p) => p.startsWith(disk)));
    }
    nets.push(...children(join(fn, v, 'net')));
  }
  return { disks, nets };
}

/** Human-readable reasons the host is using `bdf`; empty when it is free to take. */
export function hostUses(bdf: string, roots: HostRoots = HOST): string[] {
  const { disks, nets } = kernelObjects(bdf, roots);
  const reasons: string[] = [];
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  const mounts = read(join(roots.proc, 'mounts')).split('\n').map((l) => l.split(' '));
  const swaps = read(join(roots.proc, 'swaps'));
  for (const d of disks) {
    const m = mounts.find((f) => f[0] === `/dev/${d}`);
    if (m) reasons.push(`/dev/${d} is mounted on ${m[1]}`);
    if (swaps.includes(`/dev/${d} `)) reasons.push(`/dev/${d} is in use as swap`);
  }
  for (const n of nets) {
    if (read(join(roots.sys, 'class/net', n, 'operstate')).trim() === 'up') reasons.push(`network interface ${n} is up`);
  }
  return reasons;
}

// The vhost-vdpa: opener (registered in lib/schemes.ts, loaded on first use): a vDPA device bound to
// the kernel's vhost_vdpa driver, by its character device. Options after `?`, e.g.
// vhost-vdpa:/dev/vhost-vdpa-0?arena=32:
//   arena=MiB      DMA memory mapped into the device's IOTLB (default 64)
//   suspend=0      do not ask for VHOST_BACKEND_F_SUSPEND (a stop is then refused, as on a parent without it)
// With shareWith (a migration target), the new device maps the source's memfd arena through its
// own IOTLB at the same IOVAs, so the rings stay in the same memory.

import { badAddress, flag, int, parseOptions } from '../../util/options.js';
import type { MemfdArena } from '../vhost-user/arena.js';
import { VhostVdpaTransport } from './transport.js';

const OPTIONS = { arena: int(1, 4096), suspend: flag() };
const HINT = 'vhost-vdpa:/dev/vhost-vdpa-N[?arena=MiB&suspend=0]';

/**
 * Opens the device at `a.target` (a /dev/vhost-vdpa-N path). Throws E_BAD_ADDRESS (UsageError) for
 * an unknown option, a value that does not fit, or a `shareWith` that is not a vhost-vdpa device;
 * VhostVdpaTransport.open's errors otherwise (E_NO_DEVICE, E_NOT_VIRTIO, E_DEVICE_IN_USE, E_VDPA_IOTLB, …).
 */
export function open(
  a: { address: string; target: string; options: Readonly<Record<string, string>> }, shareWith?: { address: string; transport: unknown },
): { address: string; transport: VhostVdpaTransport } {
  const o = parseOptions(a.options, OPTIONS, { address: a.address, hint: HINT });
  let arena: MemfdArena | undefined;
  if (shareWith) {
    if (!(shareWith.transport instanceof VhostVdpaTransport)) {
      throw badAddress(a.address, `a vhost-vdpa device can only take over from another vhost-vdpa device, not ${shareWith.address}`,
        'migrate between two vhost-vdpa devices: the rings live in the memfd arena both map through their IOTLBs');
    }
    arena = shareWith.transport.dma;
  }
  const transport = VhostVdpaTransport.open(a.address, a.target, {
    ...(arena ? { arena } : {}),
    ...(o.arena !== undefined ? { arenaBytes: o.arena * 2 ** 20 } : {}),
    ...(o.suspend === false ? { noSuspend: true } : {}),
  });
  return { address: a.address, transport };
}

// The vfio: opener (registered in lib/schemes.ts, loaded on first use — it is what loads libc through
// koffi): vfio:BDF, or a bare BDF, is the function bound to vfio-pci, opened through lib/vfio. It
// takes no options. With shareWith, the new function joins the other one's DMA address space (same
// container, same allocator), so a migration target reaches the source's rings at the same IOVAs.
// The opener gives back the PCI function; lib/open.ts puts the virtio-pci transport on it.

import type { PciFunction } from '../pci/function.js';
import { badAddress, parseOptions } from '../util/options.js';
import { VfioPciFunction } from './pci-function.js';

const HINT = 'vfio:DOMAIN:BUS:DEVICE.FUNCTION (e.g. vfio:0000:00:02.0) takes no options';

/**
 * Opens the function at `a.target` (a normalised BDF). Throws E_BAD_ADDRESS (UsageError) for any
 * option or a `shareWith` that is not a VFIO function; VfioPciFunction.open's errors otherwise
 * (E_NO_DEVICE, E_NOT_BOUND, E_PERMISSION, E_VFIO_UNAVAILABLE, …).
 */
export function open(a: { address: string; target: string; options: Readonly<Record<string, string>> }, shareWith?: { address: string; fn?: PciFunction }): { address: string; fn: VfioPciFunction } {
  parseOptions(a.options, {}, { address: a.address, hint: HINT });
  let peer: VfioPciFunction | undefined;
  if (shareWith) {
    if (!(shareWith.fn instanceof VfioPciFunction)) {
      throw badAddress(a.address, `a VFIO function can only share DMA memory with another VFIO function, not ${shareWith.address}`,
        'migrate between two vfio: devices (or between two sim: devices)');
    }
    peer = shareWith.fn;
  }
  return { address: a.address, fn: VfioPciFunction.open(a.target, peer ? { shareWith: peer } : {}) };
}

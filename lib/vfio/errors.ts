// VFIO's errors: the same hierarchy as the rest of the SDK (lib/errors.ts), each with a
// stable code and a hint that names the command that fixes it.

import { UvirtioError } from '../errors.js';

/** VFIO, sysfs binding, regions and interrupts. */
export class VfioError extends UvirtioError {}

/** The hint for a device not bound to vfio-pci: the `uvirtio bind` command for it. */
export const bindHint = (bdf: string): string => `run \`uvirtio bind ${bdf}\` to give it to vfio-pci`;
/** The hint when vfio-pci (or the type1 IOMMU driver) is not loaded. */
export const MODPROBE_HINT = 'load the driver: `modprobe vfio-pci` (and `modprobe vfio_iommu_type1` where there is an IOMMU)';

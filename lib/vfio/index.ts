// Linux VFIO: open a virtio PCI function bound to vfio-pci as a PciFunction.
export { VfioPciFunction, type VfioOpenOptions } from './pci-function.js';
export { VfioAddressSpace } from './space.js';
export { VfioDmaAllocator, Type1Backend, NoIommuBackend } from './dma.js';
export { VfioMsix } from './msix.js';
export { VfioContainer, type IommuModel, type IommuInfo, type IovaRange } from './container.js';
export { VfioGroup } from './group.js';
export { VfioDevice, type RegionInfo, type IrqInfo } from './device.js';
export { VfioError } from './errors.js';
export {
  listVirtioDevices, describeDevice, requireVfioUsable, bindVfio, unbindVfio, parseBdf, previousDriver,
  groupMembers, groupBlockers, type VirtioPciInfo,
} from './sysfs.js';

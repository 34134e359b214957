// The VFIO user-space ABI: ioctl numbers, flags and struct layouts, from the kernel's
// include/uapi/linux/vfio.h (Linux 6.1; checked by test/vm/layout.test.ts against the host's copy).
//
// Note: the header's comments name some requests _IOR/_IOW/_IOWR, but every VFIO request is
// *defined* as _IO(VFIO_TYPE, VFIO_BASE + n) — no size or direction bits; argsz carries the size.

import { IO } from './ioctl.js';
import { defineLayout } from './layout.js';

const VFIO_TYPE = ';';
const VFIO_BASE = 100;
const vfio = (n: number): number => IO(VFIO_TYPE, VFIO_BASE + n);

/** The VFIO API version this code speaks (VFIO_GET_API_VERSION answers it). */
export const VFIO_API_VERSION = 0;

/** The VFIO ioctl requests, _IO(';', 100 + n) (vfio.h). */
export const VfioIoctl = {
  /** VFIO_GET_API_VERSION (container): returns {@link VFIO_API_VERSION}. */
  GET_API_VERSION: vfio(0),
  /** VFIO_CHECK_EXTENSION (container): whether an IOMMU model ({@link VfioIommu}) is offered. */
  CHECK_EXTENSION: vfio(1),
  /** VFIO_SET_IOMMU (container): choose the IOMMU model, once a group is attached. */
  SET_IOMMU: vfio(2),
  /** VFIO_GROUP_GET_STATUS (group): struct vfio_group_status. */
  GROUP_GET_STATUS: vfio(3),
  /** VFIO_GROUP_SET_CONTAINER (group): attach to the container whose fd is passed. */
  GROUP_SET_CONTAINER: vfio(4),
  /** VFIO_GROUP_UNSET_CONTAINER (group): detach. */
  GROUP_UNSET_CONTAINER: vfio(5),
  /** VFIO_GROUP_GET_DEVICE_FD (group): a device fd, by the device's name (its BDF). */
  GROUP_GET_DEVICE_FD: vfio(6),
  /** VFIO_DEVICE_GET_INFO (device): struct vfio_device_info. */
  DEVICE_GET_INFO: vfio(7),
  /** VFIO_DEVICE_GET_REGION_INFO (device): struct vfio_region_info. */
  DEVICE_GET_REGION_INFO: vfio(8),
  /** VFIO_DEVICE_GET_IRQ_INFO (device): struct vfio_irq_info. */
  DEVICE_GET_IRQ_INFO: vfio(9),
  /** VFIO_DEVICE_SET_IRQS (device): struct vfio_irq_set and its data. */
  DEVICE_SET_IRQS: vfio(10),
  /** VFIO_DEVICE_RESET (device). */
  DEVICE_RESET: vfio(11),
  /** VFIO_IOMMU_GET_INFO (container, type1): struct vfio_iommu_type1_info. */
  IOMMU_GET_INFO: vfio(12),
  /** VFIO_IOMMU_MAP_DMA (container, type1): struct vfio_iommu_type1_dma_map. */
  IOMMU_MAP_DMA: vfio(13),
  /** VFIO_IOMMU_UNMAP_DMA (container, type1): struct vfio_iommu_type1_dma_unmap. */
  IOMMU_UNMAP_DMA: vfio(14),
} as const;

/** IOMMU models for CHECK_EXTENSION / SET_IOMMU. */
export const VfioIommu = {
  /** VFIO_TYPE1_IOMMU. */
  TYPE1: 1,
  /** VFIO_TYPE1v2_IOMMU: type1 with unmap semantics uvirtio relies on. */
  TYPE1v2: 3,
  /** VFIO_NOIOMMU_IOMMU: no translation; DMA uses physical addresses (docs/test-vm.md#iommu-profiles). */
  NOIOMMU: 8,
} as const;

/** struct vfio_group_status.flags. */
export const GroupFlag = {
  /** Every device of the group is bound to a VFIO driver (or none). */
  VIABLE: 1 << 0,
  /** The group is attached to a container. */
  CONTAINER_SET: 1 << 1,
} as const;
/** struct vfio_device_info.flags. */
export const DeviceFlag = {
  /** VFIO_DEVICE_RESET is supported. */
  RESET: 1 << 0,
  /** A vfio-pci device. */
  PCI: 1 << 1,
  /** The info carries a capability chain. */
  CAPS: 1 << 7,
} as const;
/** struct vfio_region_info.flags. */
export const RegionFlag = {
  /** The region can be read. */
  READ: 1 << 0,
  /** The region can be written. */
  WRITE: 1 << 1,
  /** The region can be mmapped. */
  MMAP: 1 << 2,
  /** The info carries a capability chain. */
  CAPS: 1 << 3,
} as const;
/** struct vfio_irq_info.flags. */
export const IrqInfoFlag = {
  /** Interrupts can be signalled through eventfds. */
  EVENTFD: 1 << 0,
  /** The interrupts can be masked. */
  MASKABLE: 1 << 1,
  /** The interrupts are masked automatically when they fire. */
  AUTOMASKED: 1 << 2,
  /** The vector count cannot change while vectors are enabled. */
  NORESIZE: 1 << 3,
} as const;
/** struct vfio_irq_set.flags: one DATA_* and one ACTION_* bit. */
export const IrqSetFlag = {
  /** No data follows. */
  DATA_NONE: 1 << 0,
  /** A u8 per vector follows. */
  DATA_BOOL: 1 << 1,
  /** An s32 eventfd per vector follows (-1: leave the vector unassigned). */
  DATA_EVENTFD: 1 << 2,
  /** Mask the vectors. */
  ACTION_MASK: 1 << 3,
  /** Unmask the vectors. */
  ACTION_UNMASK: 1 << 4,
  /** Trigger, or (with DATA_EVENTFD) route to eventfds. */
  ACTION_TRIGGER: 1 << 5,
} as const;
/** struct vfio_iommu_type1_info.flags. */
export const IommuInfoFlag = {
  /** iova_pgsizes is valid. */
  PGSIZES: 1 << 0,
  /** The info carries a capability chain. */
  CAPS: 1 << 1,
} as const;
/** Capability id of the usable IOVA ranges in the type1 info chain. */
export const IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
/** struct vfio_iommu_type1_dma_map.flags. */
export const DmaMapFlag = {
  /** The device may read the memory. */
  READ: 1 << 0,
  /** The device may write the memory. */
  WRITE: 1 << 1,
} as const;

/** vfio-pci region and IRQ indices (enum in vfio.h). */
export const PciRegion = {
  /** BAR 0; BARs 1–4 are 1–4. */
  BAR0: 0,
  /** BAR 5. */
  BAR5: 5,
  /** Expansion ROM. */
  ROM: 6,
  /** PCI configuration space. */
  CONFIG: 7,
  /** Legacy VGA ranges. */
  VGA: 8,
} as const;
/** vfio-pci interrupt indices (enum in vfio.h). */
export const PciIrq = {
  /** Legacy INTx. */
  INTX: 0,
  /** MSI. */
  MSI: 1,
  /** MSI-X. */
  MSIX: 2,
  /** AER error notification. */
  ERR: 3,
  /** Device request (the kernel asks for the device back). */
  REQ: 4,
} as const;

/** struct vfio_group_status. */
export const groupStatus = defineLayout('struct vfio_group_status', 8, {
  argsz: [0, 'u32'], flags: [4, 'u32'],
});

/** struct vfio_device_info. */
export const deviceInfo = defineLayout('struct vfio_device_info', 20, {
  argsz: [0, 'u32'], flags: [4, 'u32'], num_regions: [8, 'u32'], num_irqs: [12, 'u32'], cap_offset: [16, 'u32'],
});

/** struct vfio_region_info. */
export const regionInfo = defineLayout('struct vfio_region_info', 32, {
  argsz: [0, 'u32'], flags: [4, 'u32'], index: [8, 'u32'], cap_offset: [12, 'u32'], size: [16, 'u64'], offset: [24, 'u64'],
});

/** struct vfio_irq_info. */
export const irqInfo = defineLayout('struct vfio_irq_info', 16, {
  argsz: [0, 'u32'], flags: [4, 'u32'], index: [8, 'u32'], count: [12, 'u32'],
});

/** Followed by `data[]`: for DATA_EVENTFD, one s32 eventfd per vector (-1 to leave one unassigned). */
export const irqSet = defineLayout('struct vfio_irq_set', 20, {
  argsz: [0, 'u32'], flags: [4, 'u32'], index: [8, 'u32'], start: [12, 'u32'], count: [16, 'u32'],
});

/** 24 bytes: cap_offset is followed by 4 bytes of padding (the struct is 8-byte aligned). */
export const iommuType1Info = defineLayout('struct vfio_iommu_type1_info', 24, {
  argsz: [0, 'u32'], flags: [4, 'u32'], iova_pgsizes: [8, 'u64'], cap_offset: [16, 'u32'],
});

/** struct vfio_info_cap_header: the header of each capability in an info chain. */
export const infoCapHeader = defineLayout('struct vfio_info_cap_header', 8, {
  id: [0, 'u16'], version: [2, 'u16'], next: [4, 'u32'],
});

/** Followed by nr_iovas × struct vfio_iova_range. */
export const capIovaRange = defineLayout('struct vfio_iommu_type1_info_cap_iova_range', 16, {
  nr_iovas: [8, 'u32'], reserved: [12, 'u32'],
});

/** struct vfio_iova_range: an inclusive [start, end] of usable IOVAs. */
export const iovaRange = defineLayout('struct vfio_iova_range', 16, {
  start: [0, 'u64'], end: [8, 'u64'],
});

/** struct vfio_iommu_type1_dma_map. */
export const dmaMap = defineLayout('struct vfio_iommu_type1_dma_map', 32, {
  argsz: [0, 'u32'], flags: [4, 'u32'], vaddr: [8, 'u64'], iova: [16, 'u64'], size: [24, 'u64'],
});

/** struct vfio_iommu_type1_dma_unmap. */
export const dmaUnmap = defineLayout('struct vfio_iommu_type1_dma_unmap', 24, {
  argsz: [0, 'u32'], flags: [4, 'u32'], iova: [8, 'u64'], size: [16, 'u64'],
});

/** Every layout, for the compiler cross-check. */
export const allLayouts = [groupStatus, deviceInfo, regionInfo, irqInfo, irqSet, iommuType1Info, infoCapHeader,
  capIovaRange, iovaRange, dmaMap, dmaUnmap];

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

export const VFIO_API_VERSION = 0;

export const VfioIoctl = {
  GET_API_VERSION: vfio(0),
  CHECK_EXTENSION: vfio(1),
  SET_IOMMU: vfio(2),
  GROUP_GET_STATUS: vfio(3),
  GROUP_SET_CONTAINER: vfio(4),
  GROUP_UNSET_CONTAINER: vfio(5),
  GROUP_GET_DEVICE_FD: vfio(6),
  DEVICE_GET_INFO: vfio(7),
  DEVICE_GET_REGION_INFO: vfio(8),
  DEVICE_GET_IRQ_INFO: vfio(9),
  DEVICE_SET_IRQS: vfio(10),
  DEVICE_RESET: vfio(11),
  IOMMU_GET_INFO: vfio(12),
  IOMMU_MAP_DMA: vfio(13),
  IOMMU_UNMAP_DMA: vfio(14),
} as const;

/** IOMMU models for CHECK_EXTENSION / SET_IOMMU. */
export const VfioIommu = { TYPE1: 1, TYPE1v2: 3, NOIOMMU: 8 } as const;

export const GroupFlag = { VIABLE: 1 << 0, CONTAINER_SET: 1 << 1 } as const;
export const DeviceFlag = { RESET: 1 << 0, PCI: 1 << 1, CAPS: 1 << 7 } as const;
export const RegionFlag = { READ: 1 << 0, WRITE: 1 << 1, MMAP: 1 << 2, CAPS: 1 << 3 } as const;
export const IrqInfoFlag = { EVENTFD: 1 << 0, MASKABLE: 1 << 1, AUTOMASKED: 1 << 2, NORESIZE: 1 << 3 } as const;
export const IrqSetFlag = {
  DATA_NONE: 1 << 0, DATA_BOOL: 1 << 1, DATA_EVENTFD: 1 << 2,
  ACTION_MASK: 1 << 3, ACTION_UNMASK: 1 << 4, ACTION_TRIGGER: 1 << 5,
} as const;
export const IommuInfoFlag = { PGSIZES: 1 << 0, CAPS: 1 << 1 } as const;
export const IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const DmaMapFlag = { READ: 1 << 0, WRITE: 1 << 1 } as const;

/** vfio-pci region and IRQ indices (enum in vfio.h). */
export const PciRegion = { BAR0: 0, BAR5: 5, ROM: 6, CONFIG: 7, VGA: 8 } as const;
export const PciIrq = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4 } as const;

export const groupStatus = defineLayout('struct vfio_group_status', 8, {
  argsz: [0, 'u32'], flags: [4, 'u32'],
});

export const deviceInfo = defineLayout('struct vfio_device_info', 20, {
  argsz: [0, 'u32'], flags: [4, 'u32'], num_regions: [8, 'u32'], num_irqs: [12, 'u32'], cap_offset: [16, 'u32'],
});

export const regionInfo = defineLayout('struct vfio_region_info', 32, {
  argsz: [0, 'u32'], flags: [4, 'u32'], index: [8, 'u32'], cap_offset: [12, 'u32'], size: [16, 'u64'], offset: [24, 'u64'],
});

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

export const infoCapHeader = defineLayout('struct vfio_info_cap_header', 8, {
  id: [0, 'u16'], version: [2, 'u16'], next: [4, 'u32'],
});

/** Followed by nr_iovas × struct vfio_iova_range. */
export const capIovaRange = defineLayout('struct vfio_iommu_type1_info_cap_iova_range', 16, {
  nr_iovas: [8, 'u32'], reserved: [12, 'u32'],
});

export const iovaRange = defineLayout('struct vfio_iova_range', 16, {
  start: [0, 'u64'], end: [8, 'u64'],
});

export const dmaMap = defineLayout('struct vfio_iommu_type1_dma_map', 32, {
  argsz: [0, 'u32'], flags: [4, 'u32'], vaddr: [8, 'u64'], iova: [16, 'u64'], size: [24, 'u64'],
});

export const dmaUnmap = defineLayout('struct vfio_iommu_type1_dma_unmap', 24, {
  argsz: [0, 'u32'], flags: [4, 'u32'], iova: [8, 'u64'], size: [16, 'u64'],
});

/** Every layout, for the compiler cross-check. */
export const allLayouts = [groupStatus, deviceInfo, regionInfo, irqInfo, irqSet, iommuType1Info, infoCapHeader,
  capIovaRange, iovaRange, dmaMap, dmaUnmap];

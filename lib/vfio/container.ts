// A VFIO container (/dev/vfio/vfio): the IOMMU context that groups attach to and DMA maps live in
// (Linux Documentation/driver-api/vfio.rst "Groups, Devices, and IOMMUs").

import fs from 'node:fs';
import { SysError } from '../sys/errno.js';
import * as libc from '../sys/libc.js';
import { Struct } from '../sys/layout.js';
import {
  capIovaRange, DmaMapFlag, dmaMap, dmaUnmap, IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, infoCapHeader, IommuInfoFlag,
  iommuType1Info, iovaRange, VFIO_API_VERSION, VfioIommu, VfioIoctl,
} from '../sys/vfio-uapi.js';
import { MODPROBE_HINT, VfioError } from './errors.js';

const CONTAINER_PATH = '/dev/vfio/vfio';

/** The IOMMU model of a container: VFIO_TYPE1v2_IOMMU, or VFIO_NOIOMMU_IOMMU (physical addresses). */
export type IommuModel = 'type1v2' | 'noiommu';

/** A range of IOVAs the IOMMU lets a mapping use. */
export interface IovaRange {
  /** First IOVA. */
  start: bigint;
  /** Inclusive, as the kernel reports it. */
  end: bigint;
}

/** VFIO_IOMMU_GET_INFO's answer (vfio.h struct vfio_iommu_type1_info). */
export interface IommuInfo {
  /** Bitmap of IOMMU page sizes (bit n set: 2^n bytes). */
  pageSizes: bigint;
  /** The IOVA ranges a mapping may use (reserved regions such as the MSI window left out). */
  ranges: IovaRange[];
}

/** A VFIO container (/dev/vfio/vfio): the IOMMU context groups attach to (Documentation/driver-api/vfio.rst). */
export class VfioContainer {
  /** The container's fd. */
  readonly fd: number;
  private model: IommuModel | null = null;
  private closed = false;

  /**
   * Opens /dev/vfio/vfio and checks the API version.
   * @throws VfioError E_VFIO_UNAVAILABLE when VFIO is not loaded or speaks another API version.
   */
  constructor() {
    if (!fs.existsSync(CONTAINER_PATH)) {
      throw new VfioError('E_VFIO_UNAVAILABLE', `${CONTAINER_PATH} does not exist`, MODPROBE_HINT);
    }
    this.fd = libc.open(CONTAINER_PATH, libc.O.RDWR);
    try {
      const version = libc.ioctl(this.fd, VfioIoctl.GET_API_VERSION, undefined, 'VFIO_GET_API_VERSION');
      if (version !== VFIO_API_VERSION) {
        throw new VfioError('E_VFIO_UNAVAILABLE', `VFIO API version ${version}, expected ${VFIO_API_VERSION}`);
      }
    } catch (e) {
      libc.close(this.fd);
      throw e;
    }
  }

  /** The IOMMU model set with setIommu(), or null before. */
  get iommu(): IommuModel | null {
    return this.model;
  }

  /** VFIO_CHECK_EXTENSION: whether the kernel offers an IOMMU model. */
  hasExtension(ext: number): boolean {
    return libc.ioctl(this.fd, VfioIoctl.CHECK_EXTENSION, ext, 'VFIO_CHECK_EXTENSION') > 0;
  }

  /**
   * VFIO_SET_IOMMU, after the first group is attached: TYPE1v2 for a group behind an IOMMU,
   * NOIOMMU for a /dev/vfio/noiommu-N group.
   */
  setIommu(model: IommuModel): void {
    if (this.model === model) return;
    const ext = model === 'type1v2' ? VfioIommu.TYPE1v2 : VfioIommu.NOIOMMU;
    if (!this.hasExtension(ext)) {
      throw new VfioError('E_NO_IOMMU', `the kernel's VFIO does not offer the ${model} IOMMU model`,
        model === 'type1v2' ? 'run `modprobe vfio_iommu_type1`' : 'load vfio with enable_unsafe_noiommu_mode=1 (kernel built with CONFIG_VFIO_NOIOMMU)');
    }
    libc.ioctl(this.fd, VfioIoctl.SET_IOMMU, ext, 'VFIO_SET_IOMMU');
    this.model = model;
  }

  /** VFIO_IOMMU_GET_INFO, with the IOVA-range capability when the kernel gives one. */
  iommuInfo(): IommuInfo {
    let info = new Struct(iommuType1Info).set('argsz', iommuType1Info.size);
    libc.ioctl(this.fd, VfioIoctl.IOMMU_GET_INFO, info.bytes, 'VFIO_IOMMU_GET_INFO');
    const needed = info.get('argsz');
    if ((info.get('flags') & IommuInfoFlag.CAPS) && needed > iommuType1Info.size) {
      // Second call with room for the capability chain (vfio.h: "argsz will be updated").
      info = new Struct(iommuType1Info, new Uint8Array(needed)).set('argsz', needed);
      libc.ioctl(this.fd, VfioIoctl.IOMMU_GET_INFO, info.bytes, 'VFIO_IOMMU_GET_INFO');
    }
    const pageSizes = info.get('flags') & IommuInfoFlag.PGSIZES ? info.get64('iova_pgsizes') : 0x1000n;
    return { pageSizes, ranges: this.iovaRanges(info) };
  }

  private iovaRanges(info: Struct<'argsz' | 'flags' | 'iova_pgsizes' | 'cap_offset'>): IovaRange[] {
    const ranges: IovaRange[] = [];
    if (!(info.get('flags') & IommuInfoFlag.CAPS)) return ranges;
    const bytes = info.bytes;
    let off = info.get('cap_offset');
    for (let hops = 0; off !== 0 && hops < 16; hops++) {
      if (off + infoCapHeader.size > bytes.length) break;
      const hdr = new Struct(infoCapHeader, bytes.subarray(off));
      if (hdr.get('id') === IOMMU_TYPE1_INFO_CAP_IOVA_RANGE && off + capIovaRange.size <= bytes.length) {
        const cap = new Struct(capIovaRange, bytes.subarray(off));
        for (let i = 0; i < cap.get('nr_iovas'); i++) {
          const at = off + capIovaRange.size + i * iovaRange.size;
          if (at + iovaRange.size > bytes.length) break;
          const r = new Struct(iovaRange, bytes.subarray(at));
          ranges.push({ start: r.get64('start'), end: r.get64('end') });
        }
      }
      off = hdr.get('next');
    }
    return ranges;
  }

  /** VFIO_IOMMU_MAP_DMA: the device may read and write [vaddr, vaddr+size) at [iova, iova+size). */
  mapDma(vaddr: bigint, iova: bigint, size: number): void {
    const m = new Struct(dmaMap).set('argsz', dmaMap.size).set('flags', DmaMapFlag.READ | DmaMapFlag.WRITE)
      .set('vaddr', vaddr).set('iova', iova).set('size', BigInt(size));
    try {
      libc.ioctl(this.fd, VfioIoctl.IOMMU_MAP_DMA, m.bytes, 'VFIO_IOMMU_MAP_DMA');
    } catch (e) {
      if (e instanceof SysError && e.errnoName === 'ENOMEM') {
        throw new VfioError('E_DMA_EXHAUSTED', `VFIO_IOMMU_MAP_DMA of ${size} bytes at 0x${iova.toString(16)}: ENOMEM`,
          'the locked-memory limit (ulimit -l) or the DMA entry limit (vfio_iommu_type1 dma_entry_limit) is reached', { cause: e });
      }
      throw e;
    }
  }

  /** VFIO_IOMMU_UNMAP_DMA of [iova, iova+size). */
  unmapDma(iova: bigint, size: number): void {
    const u = new Struct(dmaUnmap).set('argsz', dmaUnmap.size).set('iova', iova).set('size', BigInt(size));
    libc.ioctl(this.fd, VfioIoctl.IOMMU_UNMAP_DMA, u.bytes, 'VFIO_IOMMU_UNMAP_DMA');
  }

  /** Closes the fd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}

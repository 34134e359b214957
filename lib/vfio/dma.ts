// DMA memory for a device behind VFIO: VfioDmaAllocator implements lib/mem/dma.ts's DmaAllocator
// over one of two back-ends.
//   type1    anonymous mmap memory mapped with VFIO_IOMMU_MAP_DMA at an IOVA we choose (the IOMMU
//            translates; the device sees only what is mapped).
//   noiommu  no translation: the device uses physical addresses. Memory is mlock'ed (so the page
//            stays put) and its address is read from /proc/self/pagemap (root only;
//            Documentation/admin-guide/mm/pagemap.rst). Physically contiguous memory is only ever a
//            single page, so a region is kept inside one 4 KiB page, or on a 2 MiB hugepage when
//            it is bigger (needs vm.nr_hugepages > 0).

import fs from 'node:fs';
import { alignUp, checkAllocRequest, type DmaAllocator, type DmaRegion } from '../mem/dma.js';
import * as libc from '../sys/libc.js';
import { DmaError } from '../virtio/errors.js';
import type { VfioContainer } from './container.js';
import { IovaAllocator } from './iova.js';

interface Backing {
  region: DmaRegion;
  mapping: libc.Mapping;
  /** Bytes mapped for the device (a multiple of the page size). */
  length: number;
}

export interface DmaBackend {
  readonly kind: 'type1' | 'noiommu';
  alloc(size: number, align: number): Backing;
  free(b: Backing): void;
}

export class Type1Backend implements DmaBackend {
  readonly kind = 'type1';
  private readonly iovas: IovaAllocator;
  readonly pageSizes: bigint;

  constructor(private readonly container: VfioContainer) {
    const info = container.iommuInfo();
    this.pageSizes = info.pageSizes;
    this.iovas = new IovaAllocator(info.ranges);
  }

  /** The smallest IOMMU page: mappings are made in multiples of it. */
  private get pageSize(): number {
    const p = this.pageSizes & -this.pageSizes;
    return p === 0n ? libc.PAGE_SIZE : Math.max(Number(p), libc.PAGE_SIZE);
  }

  alloc(size: number, align: number): Backing {
    const length = alignUp(size, this.pageSize);
    const mapping = libc.mmap(length, libc.PROT.READ | libc.PROT.WRITE, libc.MAP.PRIVATE | libc.MAP.ANONYMOUS | libc.MAP.POPULATE,
      -1, 0n, `${length} bytes of DMA memory`);
    let iova: bigint | undefined;
    try {
      iova = this.iovas.alloc(BigInt(length), BigInt(Math.max(align, this.pageSize)));
      this.container.mapDma(mapping.address, iova, length);
    } catch (e) {
      if (iova !== undefined) this.iovas.release(iova, BigInt(length));
      libc.munmap(mapping);
      throw e;
    }
    return { region: { bytes: new Uint8Array(mapping.buffer, 0, size), iova, size }, mapping, length };
  }

  free(b: Backing): void {
    this.container.unmapDma(b.region.iova, b.length);
    this.iovas.release(b.region.iova, BigInt(b.length));
    libc.munmap(b.mapping);
  }
}

const HUGEPAGE = 2 * 1024 * 1024;
const PFN_MASK = (1n << 55n) - 1n;
const PRESENT = 1n << 63n;

export class NoIommuBackend implements DmaBackend {
  readonly kind = 'noiommu';
  private pagemap: number | null = null;

  /** The physical address behind a (locked, touched) virtual address. */
  physicalAddress(vaddr: bigint): bigint {
    this.pagemap ??= fs.openSync('/proc/self/pagemap', 'r');
    const page = BigInt(libc.PAGE_SIZE);
    const entry = Buffer.alloc(8);
    fs.readSync(this.pagemap, entry, 0, 8, Number((vaddr / page) * 8n));
    const v = entry.readBigUInt64LE(0);
    const pfn = v & PFN_MASK;
    if (!(v & PRESENT)) throw new DmaError('E_DMA_RANGE', `page at 0x${vaddr.toString(16)} is not present after mlock`);
    if (pfn === 0n) {
      throw new DmaError('E_PERMISSION', '/proc/self/pagemap shows no physical addresses to this process',
        'no-IOMMU DMA needs root (CAP_SYS_ADMIN) to read physical addresses');
    }
    return pfn * page + (vaddr % page);
  }

  alloc(size: number, align: number): Backing {
    const small = size <= libc.PAGE_SIZE && align <= libc.PAGE_SIZE;
    const length = small ? libc.PAGE_SIZE : alignUp(size, HUGEPAGE);
    if (!small && align > HUGEPAGE) {
      throw new DmaError('E_INVALID_ARGUMENT', `no-IOMMU DMA cannot align to ${align} bytes (at most ${HUGEPAGE})`);
    }
    const flags = libc.MAP.PRIVATE | libc.MAP.ANONYMOUS | libc.MAP.POPULATE | (small ? 0 : libc.MAP.HUGETLB);
    let mapping: libc.Mapping;
    try {
      mapping = libc.mmap(length, libc.PROT.READ | libc.PROT.WRITE, flags, -1, 0n, `${length} bytes of DMA memory`);
    } catch (e) {
      if (small) throw e;
      throw new DmaError('E_DMA_EXHAUSTED', `no-IOMMU DMA of ${size} bytes needs a 2 MiB hugepage and none could be had`,
        'reserve hugepages (`echo 64 > /proc/sys/vm/nr_hugepages`) or allocate at most one page per region', { cause: e });
    }
    try {
      libc.mlock(mapping);
      const iova = this.physicalAddress(mapping.address);
      // A hugepage is contiguous; several hugepages in a row must be checked.
      for (let off = HUGEPAGE; !small && off < length; off += HUGEPAGE) {
        if (this.physicalAddress(mapping.address + BigInt(off)) !== iova + BigInt(off)) {
          throw new DmaError('E_DMA_EXHAUSTED', `no-IOMMU DMA of ${size} bytes: the hugepages are not physically contiguous`,
            'allocate at most 2 MiB per region');
        }
      }
      return { region: { bytes: new Uint8Array(mapping.buffer, 0, size), iova, size }, mapping, length };
    } catch (e) {
      libc.munmap(mapping);
      throw e;
    }
  }

  free(b: Backing): void {
    libc.munmap(b.mapping); // also unlocks
  }

  close(): void {
    if (this.pagemap !== null) fs.closeSync(this.pagemap);
    this.pagemap = null;
  }
}

/** DmaAllocator over VFIO memory; `backend.kind` says how the device reaches it. */
export class VfioDmaAllocator implements DmaAllocator {
  private readonly live = new Map<bigint, Backing>();
  private closed = false;

  constructor(readonly backend: DmaBackend) {}

  get kind(): 'type1' | 'noiommu' {
    return this.backend.kind;
  }

  alloc(size: number, align = 64): DmaRegion {
    checkAllocRequest(size, align);
    if (this.closed) throw new DmaError('E_CLOSED', 'the DMA allocator is closed');
    const b = this.backend.alloc(size, align);
    if (b.region.iova % BigInt(align) !== 0n) {
      this.backend.free(b);
      throw new DmaError('E_DMA_RANGE', `DMA region at 0x${b.region.iova.toString(16)} is not aligned to ${align}`);
    }
    this.live.set(b.region.iova, b);
    return b.region;
  }

  free(region: DmaRegion): void {
    const b = this.live.get(region.iova);
    if (!b || b.region !== region) return;
    this.live.delete(region.iova);
    this.backend.free(b);
  }

  lookup(iova: bigint, len: number): DmaRegion | undefined {
    if (len < 0) return undefined;
    for (const { region: r } of this.live.values()) {
      if (iova >= r.iova && iova + BigInt(len) <= r.iova + BigInt(r.size)) return r;
    }
    return undefined;
  }

  /** Regions currently allocated. */
  get count(): number {
    return this.live.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const b of [...this.live.values()].reverse()) {
      try {
        this.backend.free(b);
      } catch {
        // Closing the container drops any mapping left.
      }
    }
    this.live.clear();
    if (this.backend instanceof NoIommuBackend) this.backend.close();
  }
}

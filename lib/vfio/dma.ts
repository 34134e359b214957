// DMA memory for a device behind VFIO: VfioDmaAllocator implements lib/mem/dma.ts's DmaAllocator
// over one of two back-ends.
//   type1    anonymous mmap memory mapped with VFIO_IOMMU_MAP_DMA at an IOVA we choose (the IOMMU
//            translates; the device sees only what is mapped).
//   noiommu  no translation: the device uses physical addresses. Memory is mlock'ed (so the page
//            stays put) and its address is read from /proc/self/pagemap (root only;
//            Documentation/admin-guide/mm/pagemap.rst). Physically contiguous memory is only ever a
//            single page, so a region is kept inside one 4 KiB page, or on a 2 MiB hugepage when
//            it is bigger (needs vm.nr_hugepages > 0). Regions of up to 2 MiB share hugepages: each
//            hugepage is an arena carved up first-fit, so 32 request slots of 16 KiB take one
//            hugepage, not 32.

import fs from 'node:fs';
import { alignUp, checkAllocRequest, checkFreeArgument, FreeGuards, heldRegion, isIovaRange, RegionIndex, type DmaAllocator, type DmaRegion, type InUseCheck } from '../mem/dma.js';
import * as libc from '../sys/libc.js';
import { DmaError } from '../errors.js';
import type { VfioContainer } from './container.js';
import { IovaAllocator } from './iova.js';

/** The memory behind one region, as a back-end hands it out. */
export interface Backing {
  /** The region the driver sees. */
  region: DmaRegion;
  /** The host mapping holding it. */
  mapping: libc.Mapping;
  /** Bytes mapped for the device (a multiple of the page size); for an arena piece, its rounded size. */
  length: number;
  /** No-IOMMU: the shared hugepage this region is a piece of, and where in it. */
  arena?: Arena;
  /** No-IOMMU: the piece's offset in its arena, bytes. */
  offset?: number;
}

/** A locked 2 MiB hugepage (physically contiguous) that several regions are carved from. */
interface Arena {
  mapping: libc.Mapping;
  phys: bigint;
  space: IovaAllocator;
}

/** How VFIO memory is made reachable by the device: type1 IOMMU mappings or physical addresses. */
export interface DmaBackend {
  /** Which back-end. */
  readonly kind: 'type1' | 'noiommu';
  /**
   * Memory of at least `size` bytes at an IOVA aligned to `align`, mapped for the device.
   * @throws DmaError E_DMA_EXHAUSTED (no IOVA or hugepage room), SysError from mmap/ioctl.
   */
  alloc(size: number, align: number): Backing;
  /** Takes the device's access away (type1: VFIO_IOMMU_UNMAP_DMA); this process keeps the memory. */
  revoke(b: Backing): void;
  /** Gives the memory back (after revoke). */
  unmapHost(b: Backing): void;
}

/** VFIO type1: anonymous memory mapped with VFIO_IOMMU_MAP_DMA at IOVAs chosen from the usable ranges. */
export class Type1Backend implements DmaBackend {
  /** 'type1'. */
  readonly kind = 'type1';
  private readonly iovas: IovaAllocator;
  /** Bitmap of IOMMU page sizes (bit n: 2^n bytes). */
  readonly pageSizes: bigint;

  /** Reads the container's IOMMU info (page sizes, IOVA ranges). */
  constructor(private readonly container: VfioContainer) {
    const info = container.iommuInfo();
    this.pageSizes = info.pageSizes;
    this.iovas = new IovaAllocator(info.ranges);
  }

  /** The smallest IOMMU page: mappings are made in multiples of it. */
  private get pageSize(): number {
    const p = this.pageSizes & -this.pageSizes;
    return p === 0n ? libc.pageSize() : Math.max(Number(p), libc.pageSize());
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

  revoke(b: Backing): void {
    this.container.unmapDma(b.region.iova, b.length);
    this.iovas.release(b.region.iova, BigInt(b.length));
  }

  unmapHost(b: Backing): void {
    libc.munmap(b.mapping);
  }
}

const HUGEPAGE = 2 * 1024 * 1024;
const PFN_MASK = (1n << 55n) - 1n;
const PRESENT = 1n << 63n;

/** Arena pieces are rounded to this, so that every piece starts cache-line aligned. */
const PIECE = 64;

/** No IOMMU: locked memory whose physical address (from /proc/self/pagemap) the device uses. */
export class NoIommuBackend implements DmaBackend {
  /** 'noiommu'. */
  readonly kind = 'noiommu';
  private pagemap: number | null = null;
  private readonly arenas: Arena[] = [];

  /** Hugepages held as arenas now (for tests and diagnostics). */
  get arenaCount(): number {
    return this.arenas.length;
  }

  /** The physical address behind a (locked, touched) virtual address. */
  physicalAddress(vaddr: bigint): bigint {
    this.pagemap ??= fs.openSync('/proc/self/pagemap', 'r');
    const page = BigInt(libc.pageSize());
    const entry = Buffer.alloc(8);
    fs.readSync(this.pagemap, entry, 0, 8, Number((vaddr / page) * 8n));
    const v = entry.readBigUInt64LE(0);
    const pfn = v & PFN_MASK;
    if (!(v & PRESENT)) throw new DmaError('E_DMA_RANGE', `page at 0x${vaddr.toString(16)} is not present after mlock`,
      'the kernel did not keep the page in memory: raise the locked-memory limit (ulimit -l) and check the host is not short of memory');
    if (pfn === 0n) {
      throw new DmaError('E_PERMISSION', '/proc/self/pagemap shows no physical addresses to this process',
        'no-IOMMU DMA needs root (CAP_SYS_ADMIN) to read physical addresses');
    }
    return pfn * page + (vaddr % page);
  }

  /** A 2 MiB hugepage, locked, with its physical address. */
  private hugepage(length: number, size: number): { mapping: libc.Mapping; phys: bigint } {
    let mapping: libc.Mapping;
    try {
      mapping = libc.mmap(length, libc.PROT.READ | libc.PROT.WRITE, libc.MAP.PRIVATE | libc.MAP.ANONYMOUS | libc.MAP.POPULATE | libc.MAP.HUGETLB,
        -1, 0n, `${length} bytes of DMA memory`);
    } catch (e) {
      throw new DmaError('E_DMA_EXHAUSTED', `no-IOMMU DMA of ${size} bytes needs a 2 MiB hugepage and none could be had`,
        'reserve hugepages (`echo 64 > /proc/sys/vm/nr_hugepages`) or allocate at most one page per region', { cause: e });
    }
    try {
      libc.mlock(mapping);
      const phys = this.physicalAddress(mapping.address);
      // A hugepage is contiguous; several hugepages in a row must be checked.
      for (let off = HUGEPAGE; off < length; off += HUGEPAGE) {
        if (this.physicalAddress(mapping.address + BigInt(off)) !== phys + BigInt(off)) {
          throw new DmaError('E_DMA_EXHAUSTED', `no-IOMMU DMA of ${size} bytes: the hugepages are not physically contiguous`,
            'allocate at most 2 MiB per region');
        }
      }
      return { mapping, phys };
    } catch (e) {
      libc.munmap(mapping);
      throw e;
    }
  }

  /** A piece of a shared hugepage (first fit over the arenas, a new arena when none has room). */
  private piece(size: number, align: number): Backing {
    const length = alignUp(size, PIECE);
    const a = BigInt(Math.max(align, PIECE));
    for (const arena of this.arenas) {
      let offset: bigint;
      try {
        offset = arena.space.alloc(BigInt(length), a);
      } catch {
        continue;
      }
      const bytes = new Uint8Array(arena.mapping.buffer, Number(offset), size);
      bytes.fill(0); // a reused piece: the allocator hands out zeroed memory
      return { region: { bytes, iova: arena.phys + offset, size }, mapping: arena.mapping, length, arena, offset: Number(offset) };
    }
    const { mapping, phys } = this.hugepage(HUGEPAGE, size);
    this.arenas.push({ mapping, phys, space: new IovaAllocator([{ start: 0n, end: BigInt(HUGEPAGE) - 1n }], 0n) });
    return this.piece(size, align);
  }

  alloc(size: number, align: number): Backing {
    if (align > HUGEPAGE) throw new DmaError('E_INVALID_ARGUMENT', `no-IOMMU DMA cannot align to ${align} bytes (at most ${HUGEPAGE})`);
    if (size > libc.pageSize() || align > libc.pageSize()) {
      if (size <= HUGEPAGE) return this.piece(size, align);
      const length = alignUp(size, HUGEPAGE);
      const { mapping, phys } = this.hugepage(length, size);
      return { region: { bytes: new Uint8Array(mapping.buffer, 0, size), iova: phys, size }, mapping, length };
    }
    // Within one page: a locked page of its own (no hugepage needed).
    const mapping = libc.mmap(libc.pageSize(), libc.PROT.READ | libc.PROT.WRITE, libc.MAP.PRIVATE | libc.MAP.ANONYMOUS | libc.MAP.POPULATE,
      -1, 0n, `${libc.pageSize()} bytes of DMA memory`);
    try {
      libc.mlock(mapping);
      const iova = this.physicalAddress(mapping.address);
      return { region: { bytes: new Uint8Array(mapping.buffer, 0, size), iova, size }, mapping, length: libc.pageSize() };
    } catch (e) {
      libc.munmap(mapping);
      throw e;
    }
  }

  /** Without an IOMMU there is nothing to revoke: the device reaches physical memory (reset it first). */
  revoke(): void {}

  unmapHost(b: Backing): void {
    const arena = b.arena;
    if (!arena) {
      libc.munmap(b.mapping); // also unlocks
      return;
    }
    arena.space.release(BigInt(b.offset!), BigInt(b.length));
    if (arena.space.isEmpty(BigInt(HUGEPAGE))) {
      this.arenas.splice(this.arenas.indexOf(arena), 1);
      libc.munmap(arena.mapping);
    }
  }

  /** Unmaps every hugepage arena and closes pagemap. */
  close(): void {
    for (const arena of this.arenas.splice(0)) libc.munmap(arena.mapping);
    if (this.pagemap !== null) fs.closeSync(this.pagemap);
    this.pagemap = null;
  }
}

/** DmaAllocator over VFIO memory; `backend.kind` says how the device reaches it. */
export class VfioDmaAllocator implements DmaAllocator {
  private readonly live = new Map<bigint, Backing>();
  /** The live regions by IOVA, for lookup(). */
  private readonly index = new RegionIndex();
  private closed = false;
  /** free() refuses memory a live virtqueue uses (DmaAllocator.guardFree). */
  private readonly guards = new FreeGuards();

  constructor(
    /** The back-end that maps the memory. */
    readonly backend: DmaBackend,
  ) {}

  /** Which back-end: 'type1' or 'noiommu'. */
  get kind(): 'type1' | 'noiommu' {
    return this.backend.kind;
  }

  alloc(size: number, align = 64): DmaRegion {
    checkAllocRequest(size, align);
    if (this.closed) throw new DmaError('E_CLOSED', 'the DMA allocator is closed');
    const b = this.backend.alloc(size, align);
    if (b.region.iova % BigInt(align) !== 0n) {
      this.backend.revoke(b);
      this.backend.unmapHost(b);
      throw new DmaError('E_DMA_RANGE', `DMA region at 0x${b.region.iova.toString(16)} is not aligned to ${align}`,
        `the memory the kernel gave is not aligned so (no-IOMMU: physical pages); ask for an alignment of at most the page size (${libc.pageSize()} bytes), or try again`);
    }
    this.live.set(b.region.iova, b);
    this.index.add(b.region);
    return b.region;
  }

  /**
   * See {@link DmaAllocator.free}: the allocator's own region (or an exact copy) only,
   * E_INVALID_ARGUMENT otherwise; E_DMA_IN_USE while a live virtqueue uses it (also once the
   * allocator is closed: freeing unmaps the memory from this process, under a ring still read).
   */
  free(region: DmaRegion): void {
    const req = checkFreeArgument(region);
    const b = this.live.get(req.iova);
    const owner = `the VFIO DMA allocator (${this.kind})`;
    if (!b) {
      if (this.closed) return; // close() took the device's access to it; nothing left to do
      heldRegion(req, undefined, owner); // throws: not one of ours, or already freed
      return;
    }
    heldRegion(req, b.region, owner);
    this.guards.assertUnused(b.region.iova, b.region.size, owner);
    this.live.delete(req.iova);
    this.index.remove(b.region);
    if (!this.closed) this.backend.revoke(b);
    this.backend.unmapHost(b);
    if (this.closed && this.live.size === 0) this.closeBackend();
  }

  /** See {@link DmaAllocator.guardFree}. */
  guardFree(check: InUseCheck): () => void {
    return this.guards.add(check);
  }

  lookup(iova: bigint, len: number): DmaRegion | undefined {
    if (!isIovaRange(iova, len) || !Number.isSafeInteger(len) || len < 0) return undefined;
    return this.index.find(iova, len);
  }

  /** Regions currently allocated. */
  get count(): number {
    return this.live.size;
  }

  /**
   * Takes the device's access to every region away (the container is about to close). The memory
   * of regions still allocated stays mapped in this process until they are freed — a ring a
   * driver not yet closed still looks at is never unmapped under it; the last free() releases it.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const b of [...this.live.values()].reverse()) {
      try {
        this.backend.revoke(b);
      } catch {
        // Closing the container drops any mapping left.
      }
    }
    if (this.live.size === 0) this.closeBackend();
  }

  private closeBackend(): void {
    if (this.backend instanceof NoIommuBackend) this.backend.close();
  }
}

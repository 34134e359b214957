// Indirect descriptor tables (virtio 1.2 §2.7.5.3 split, §2.8.7 packed), pooled.
//
// A table holds 16-byte descriptors, so its size depends on the chain. Tables come in power-of-two
// size classes carved out of DMA slabs; a table goes back to its class's free list when its chain
// is used, so after warm-up the hot path allocates no DMA memory. Slabs are freed by close().

import type { DmaAllocator, DmaRegion } from '../../mem/dma.js';

/** Bytes per descriptor, the same in both layouts (virtio 1.2 §2.7.5, §2.8.13). */
const DESC_BYTES = 16;
/** Slabs are at least a page so that small tables share one DMA allocation. */
const SLAB_BYTES = 4096;

export interface IndirectTable {
  /** The driver's view of the table, exactly as long as the table. */
  readonly view: DataView;
  readonly iova: bigint;
  readonly sizeClass: number;
}

export class IndirectPool {
  private readonly freeByClass: IndirectTable[][] = [];
  private readonly slabs: DmaRegion[] = [];

  constructor(private readonly dma: DmaAllocator) {}

  /** A table with room for at least `descs` descriptors (an integer ≥ 1). */
  take(descs: number): IndirectTable {
    // ceil(log2(descs)) in integer arithmetic (Math.log2 is a libm call on every chain).
    const sizeClass = 32 - Math.clz32(descs - 1);
    const free = (this.freeByClass[sizeClass] ??= []);
    return free.pop() ?? this.grow(sizeClass, free);
  }

  give(table: IndirectTable): void {
    this.freeByClass[table.sizeClass]!.push(table);
  }

  /** Whether any byte of [iova, end) lies in one of the pool's slabs (the tables, free or in use). */
  overlaps(iova: bigint, end: bigint): boolean {
    for (const slab of this.slabs) if (iova < slab.iova + BigInt(slab.size) && slab.iova < end) return true;
    return false;
  }

  close(): void {
    for (const slab of this.slabs) this.dma.free(slab);
    this.slabs.length = 0;
    this.freeByClass.length = 0;
  }

  /** Allocates a slab for one size class, keeps one table and puts the rest on the free list. */
  private grow(sizeClass: number, free: IndirectTable[]): IndirectTable {
    const tableBytes = DESC_BYTES << sizeClass;
    const slab = this.dma.alloc(Math.max(SLAB_BYTES, tableBytes), DESC_BYTES);
    this.slabs.push(slab);
    const tableAt = (offset: number): IndirectTable => ({
      view: new DataView(slab.bytes.buffer, slab.bytes.byteOffset + offset, tableBytes),
      iova: slab.iova + BigInt(offset),
      sizeClass,
    });
    for (let offset = tableBytes; offset + tableBytes <= slab.size; offset += tableBytes) free.push(tableAt(offset));
    return tableAt(0);
  }
}

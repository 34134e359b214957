// DMA memory: the interface every owner of an address space implements, and the heap allocator
// the reference device uses (plain memory, made-up IOVAs).
//
// A driver writes rings and buffers through `region.bytes`; it gives the device `region.iova`.
// Implementations: HeapDmaAllocator (here), VFIO type1 and no-IOMMU (lib/vfio), vhost-user memfd
// regions (lib/transport/vhost-user).

import { endianness } from 'node:os';
import { DmaError } from '../errors.js';

if (endianness() !== 'LE') {
  // Virtio is little-endian and the rings are accessed through typed arrays in host order.
  throw new Error('uvirtio needs a little-endian host (virtio rings are little-endian)');
}

/** A piece of memory both the driver and the device reach: the driver through `bytes`, the device at `iova`. */
export interface DmaRegion {
  /** The driver's view of the memory. Length is `size`. */
  readonly bytes: Uint8Array;
  /** The address the device uses for `bytes[0]`. */
  readonly iova: bigint;
  /** Length in bytes (at least what was asked for). */
  readonly size: number;
}

/**
 * Hands out DMA memory in one address space (docs/architecture.md#interfaces). Implemented by the
 * owner of that space: VFIO (type1 or no-IOMMU), vhost-user (shared memfd regions), the heap.
 */
export interface DmaAllocator {
  /**
   * Zeroed memory of at least `size` bytes whose IOVA is a multiple of `align` (a power of two).
   * @throws DmaError E_INVALID_ARGUMENT (size not a positive integer, align not a power of two),
   *   E_DMA_EXHAUSTED (no room), E_CLOSED (the allocator is closed).
   */
  alloc(size: number, align?: number): DmaRegion;
  /** Returns memory to the allocator. Using the region afterwards is a bug. */
  free(region: DmaRegion): void;
  /** The region containing [iova, iova+len), or undefined when the driver does not own it. */
  lookup(iova: bigint, len: number): DmaRegion | undefined;
  /** Releases every region (unmaps, unlocks); the allocator is unusable afterwards. */
  close(): void;
}

/**
 * What a device model sees of the driver's memory: byte views by IOVA. A range the driver does not
 * own throws E_DMA_RANGE, as an IOMMU fault would.
 */
export interface GuestMemory {
  /** Bytes [iova, iova+len) of the driver's memory; throws DmaError E_DMA_RANGE outside it. */
  view(iova: bigint, len: number): Uint8Array;
}

/** `n` rounded up to a multiple of `align`. */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * Checks the arguments of {@link DmaAllocator.alloc}.
 * @throws DmaError E_INVALID_ARGUMENT when size is not a positive integer or align not a power of two.
 */
export function checkAllocRequest(size: number, align: number): void {
  if (!Number.isInteger(size) || size <= 0) {
    throw new DmaError('E_INVALID_ARGUMENT', `DMA size must be a positive integer, got ${size}`);
  }
  if (!isPowerOfTwo(align)) {
    throw new DmaError('E_INVALID_ARGUMENT', `DMA alignment must be a power of two, got ${align}`);
  }
}

/** Options of {@link HeapDmaAllocator}. */
export interface HeapDmaOptions {
  /** The first IOVA handed out; default 0x1_0000_0000 so IOVAs never look like small numbers. */
  base?: bigint;
  /** Upper bound on the bytes handed out at once; default 1 GiB. */
  limit?: number;
}

/**
 * Plain JavaScript memory with made-up IOVAs, for the in-process reference device. Each region is
 * its own ArrayBuffer; IOVAs are handed out upwards from `base` with a guard gap between regions so
 * that an overrun does not silently land in the next region.
 */
export class HeapDmaAllocator implements DmaAllocator, GuestMemory {
  private readonly regions = new Map<bigint, DmaRegion>();
  private next: bigint;
  private used = 0;
  private readonly limit: number;
  private closed = false;

  constructor(options: HeapDmaOptions = {}) {
    this.next = options.base ?? 0x1_0000_0000n;
    this.limit = options.limit ?? 1 << 30;
  }

  alloc(size: number, align = 64): DmaRegion {
    checkAllocRequest(size, align);
    if (this.closed) throw new DmaError('E_CLOSED', 'the DMA allocator is closed');
    if (this.used + size > this.limit) {
      throw new DmaError('E_DMA_EXHAUSTED', `cannot allocate ${size} bytes: ${this.used} of ${this.limit} in use`,
        'free regions you no longer need, or create the allocator with a larger limit');
    }
    const a = BigInt(Math.max(align, 4096));
    const iova = ((this.next + a - 1n) / a) * a;
    this.next = iova + BigInt(alignUp(size, 4096)) + 4096n; // one guard page
    const region: DmaRegion = { bytes: new Uint8Array(size), iova, size };
    this.regions.set(iova, region);
    this.used += size;
    return region;
  }

  free(region: DmaRegion): void {
    if (this.regions.delete(region.iova)) this.used -= region.size;
  }

  lookup(iova: bigint, len: number): DmaRegion | undefined {
    if (len < 0) return undefined;
    // Regions are few (rings and buffer pools); a linear scan keeps the model obvious.
    for (const r of this.regions.values()) {
      if (iova >= r.iova && iova + BigInt(len) <= r.iova + BigInt(r.size)) return r;
    }
    return undefined;
  }

  view(iova: bigint, len: number): Uint8Array {
    const r = this.lookup(iova, len);
    if (!r) {
      throw new DmaError('E_DMA_RANGE', `device access to 0x${iova.toString(16)}+${len} is outside the driver's memory`);
    }
    const off = Number(iova - r.iova);
    return r.bytes.subarray(off, off + len);
  }

  close(): void {
    this.regions.clear();
    this.used = 0;
    this.closed = true;
  }
}

// Checking the caller's memory that BlkDriver.readDma hands to the device (virtio 1.2 §5.2.6: the
// device writes a read's data into the driver-supplied writable buffer at its address). The device
// writes at the IOVA, the caller reads the bytes: they are the same memory only when the driver's
// allocator says so, and only for the values that were checked, so each field is read once.

import { UsageError } from '../../lib/errors.js';
import { shown } from '../../lib/util/shown.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import { plainBytes } from '../../lib/util/plain-bytes.js';

/** The readDma targets of one driver, each checked against its allocator once per region object. */
export class DmaTargets {
  /** Region objects already checked, with the iova and bytes they had then and the allocator's region holding them. */
  private readonly seen = new WeakMap<DmaRegion, { iova: bigint; bytes: Uint8Array; owner: DmaRegion }>();

  constructor(private readonly dma: DmaAllocator, private readonly address: string) {}

  /**
   * Reads `target`'s iova and bytes once and returns them, the bytes as a plain Uint8Array over the
   * same memory (a subclass's subarray() never decides where the result points). Throws UsageError
   * E_INVALID_ARGUMENT unless `bytes` bytes fit at `offset` (a non-negative integer) and the whole of
   * the target is memory of the allocator at the IOVA it claims (DmaAllocator.lookup, a scan: made
   * again only when the object's iova or bytes are not what was checked) and, for a target checked
   * before, the region it was found in has not been freed since (looked up by its start). A region
   * freed before its first readDma cannot be told from the memory's new owner.
   */
  check(target: DmaRegion, offset: number, bytes: number): { iova: bigint; view: Uint8Array } {
    const iova: unknown = target?.iova;
    const given: unknown = target?.bytes;
    const view = plainBytes(given); // undefined for a Proxy of a typed array, or a detached buffer
    if (typeof iova !== 'bigint' || !view || !Number.isInteger(offset) || offset < 0 || offset + bytes > view.length) {
      throw new UsageError('E_INVALID_ARGUMENT', `readDma: ${bytes} bytes at offset ${shown(offset)} do not fit the target region`,
        'pass a region from the driver\'s device.dma.alloc() and an offset that leaves room for the sectors');
    }
    const seen = this.seen.get(target);
    if (seen && seen.iova === iova && seen.bytes === given) {
      // The memory it was checked in must still be allocated (the allocators find a region by its
      // own start without a scan): once freed, it may be someone else's, at the same IOVA and bytes.
      if (this.dma.lookup(seen.owner.iova, seen.owner.size) === seen.owner) return { iova, view };
      throw new UsageError('E_INVALID_ARGUMENT', `readDma: the target's memory at 0x${iova.toString(16)} was freed after an earlier readDma on ${this.address}`,
        'allocate a new region: the device must not write into memory that was handed back to the allocator');
    }
    const owner = this.dma.lookup(iova, view.length);
    if (!owner || owner.bytes.buffer !== view.buffer || owner.bytes.byteOffset + Number(iova - owner.iova) !== view.byteOffset) {
      throw new UsageError('E_INVALID_ARGUMENT', `readDma: the target is not memory of ${this.address}'s DMA allocator`,
        'allocate it with the driver\'s device.dma.alloc(): the device can only write where its IOVAs point');
    }
    this.seen.set(target, { iova, bytes: given as Uint8Array, owner });
    return { iova, view };
  }
}

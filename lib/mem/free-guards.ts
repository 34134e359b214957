// What stops DmaAllocator.free() from taking memory away from a device that still uses it.
//
// A virtqueue registers a check with the allocator its ring comes from when it is created and
// takes it back when it is closed; free() asks every check before it gives anything back. The
// checks do their work at free() time (a scan of the chains in flight), so adding a chain to a
// ring costs nothing for them. Every DmaAllocator in this SDK holds one FreeGuards.

import { DmaError } from '../errors.js';

/**
 * Answers whether the bytes [iova, iova+size) are still in use, and by what: a clause naming the
 * user ("chain 3 in flight on queue 0 uses 0x1000+512 of it", "it is the ring itself of queue 0,
 * which is open"), or undefined when nothing of the range is in use. Must not throw, and must
 * finish in bounded time whatever a device wrote into shared memory.
 */
export type InUseCheck = (iova: bigint, size: number) => string | undefined;

/** The in-use checks an allocator consults at the top of free(). */
export class FreeGuards {
  private readonly checks: InUseCheck[] = [];

  /** Adds a check; the function returned removes it (a second call does nothing). */
  add(check: InUseCheck): () => void {
    this.checks.push(check);
    return () => {
      const at = this.checks.indexOf(check);
      if (at >= 0) this.checks.splice(at, 1);
    };
  }

  /**
   * Throws unless every check says the region is unused.
   * @param iova the region's first IOVA.
   * @param size its length in bytes.
   * @param owner the allocator, for the message.
   * @throws DmaError E_DMA_IN_USE naming what still uses the region.
   */
  assertUnused(iova: bigint, size: number, owner: string): void {
    for (const check of this.checks) {
      const user = check(iova, size);
      if (user !== undefined) {
        throw new DmaError('E_DMA_IN_USE', `free() of 0x${iova.toString(16)}+${size} refused by ${owner}: ${user}`,
          'wait for the request to complete (or close the queue) before freeing its memory; nothing was freed');
      }
    }
  }
}

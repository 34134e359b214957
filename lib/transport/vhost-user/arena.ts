// DMA memory for vhost-user: one memfd arena (default 64 MiB), mapped once in this process and
// shared once with each back-end by VHOST_USER_SET_MEM_TABLE (vhost-user.rst "Memory access").
// Rings and buffers are sub-allocated from it; the IOVA a device sees is the "guest address" we
// chose for the region (GUEST_BASE + offset), and SET_VRING_ADDR takes the matching "user address"
// (our mapping's virtual address), since VIRTIO_F_IOMMU_PLATFORM is never negotiated.
//
// A migration target (openTransport(…, { shareWith })) retains the same arena, so the rings stay
// in the same memory; the arena is unmapped when the last transport holding it is closed and the
// last region allocated from it is freed.

import * as libc from '../../sys/libc.js';
import { alignUp, badIovaRange, checkAllocRequest, checkFreeArgument, FreeGuards, heldRegion, isIovaRange, RegionIndex, type DmaAllocator, type DmaRegion, type InUseCheck } from '../../mem/dma.js';
import { DmaError } from '../../errors.js';

/** The guest-physical address of the arena's first byte (ours to choose; 4 GiB, never a small number). */
export const GUEST_BASE = 0x1_0000_0000n;
export const DEFAULT_ARENA_BYTES = 64 << 20;
const MIN_ALIGN = 64;

interface Hole {
  offset: number;
  size: number;
}

/**
 * The DMA memory of a vhost-user transport: one memfd mapping shared with the back-end through
 * SET_MEM_TABLE, handed out as {@link DmaAllocator} allocations. Reference-counted so that a
 * migration target can share a source's arena (VhostUserOptions.arena).
 */
export class MemfdArena implements DmaAllocator {
  /** The memfd, passed to the back-end with SET_MEM_TABLE (SCM_RIGHTS). */
  readonly fd: number;
  /** The arena's size in bytes (a multiple of the page size). */
  readonly size: number;
  /** The IOVA of the arena's first byte: the "guest physical address" SET_MEM_TABLE announces. */
  readonly guestBase = GUEST_BASE;
  private readonly map: libc.Mapping;
  private readonly bytes: Uint8Array;
  /** Free space, sorted by offset, adjacent holes merged. */
  private holes: Hole[];
  /** Live regions by offset. */
  private readonly live = new Map<number, DmaRegion>();
  /** The live regions by IOVA, for lookup(). */
  private readonly index = new RegionIndex();
  private holders = 1;
  private closed = false;
  /** The arena as free()'s errors name it. */
  protected readonly owner: string = 'the vhost-user memfd arena';
  /** free() refuses memory a live virtqueue uses (DmaAllocator.guardFree); shared by every holder. */
  private readonly guards = new FreeGuards();

  constructor(size = DEFAULT_ARENA_BYTES) {
    if (!Number.isInteger(size) || size <= 0 || size % libc.pageSize() !== 0) {
      throw new DmaError('E_INVALID_ARGUMENT', `the vhost-user arena size must be a positive multiple of ${libc.pageSize()}, got ${size}`);
    }
    this.size = size;
    this.fd = libc.memfdCreate('uvirtio-vhost-user');
    try {
      libc.ftruncate(this.fd, size);
      this.map = libc.mmap(size, libc.PROT.READ | libc.PROT.WRITE, libc.MAP.SHARED, this.fd, 0n, `memfd arena of ${size} bytes`);
    } catch (e) {
      libc.close(this.fd);
      throw e;
    }
    this.bytes = new Uint8Array(this.map.buffer);
    this.holes = [{ offset: 0, size }];
  }

  /** Our virtual address of the arena (the SET_MEM_TABLE "user address"). */
  get userBase(): bigint {
    return this.map.address;
  }

  /** The user address for an IOVA in the arena (SET_VRING_ADDR carries user addresses). */
  userAddress(iova: bigint): bigint {
    return this.map.address + (iova - this.guestBase);
  }

  /** A byte view by IOVA (the transport reads used->idx through it). */
  view(iova: bigint, len: number): Uint8Array {
    if (!isIovaRange(iova, len)) throw badIovaRange(iova, len);
    const off = Number(iova - this.guestBase);
    if (!Number.isSafeInteger(len) || len < 0 || off < 0 || off + len > this.size) throw new DmaError('E_DMA_RANGE', `0x${iova.toString(16)}+${len} is outside the vhost-user arena`,
      'every address given to the back-end must lie in memory of the transport\'s dma (alloc), which is the arena it shares');
    return this.bytes.subarray(off, off + len);
  }

  /** Another transport shares this arena (a migration target): close() then needs one more call. */
  retain(): this {
    if (this.closed) throw new DmaError('E_CLOSED', 'the vhost-user arena is closed');
    this.holders++;
    return this;
  }

  alloc(size: number, align = MIN_ALIGN): DmaRegion {
    checkAllocRequest(size, align);
    if (this.closed) throw new DmaError('E_CLOSED', 'the vhost-user arena is closed');
    const a = Math.max(align, MIN_ALIGN);
    const need = alignUp(size, MIN_ALIGN);
    for (let i = 0; i < this.holes.length; i++) {
      const h = this.holes[i]!;
      const start = alignUp(h.offset, a);
      if (start + need > h.offset + h.size) continue;
      // Split the hole into what lies before the region and what lies after it.
      const after = { offset: start + need, size: h.offset + h.size - (start + need) };
      const pieces = [{ offset: h.offset, size: start - h.offset }, after].filter((p) => p.size > 0);
      this.holes.splice(i, 1, ...pieces);
      const bytes = this.bytes.subarray(start, start + size);
      bytes.fill(0);
      const region: DmaRegion = { bytes, iova: this.guestBase + BigInt(start), size };
      this.live.set(start, region);
      this.index.add(region);
      return region;
    }
    throw new DmaError('E_DMA_EXHAUSTED', `the vhost-user arena (${this.size} bytes) has no room for ${size} bytes aligned to ${a}`,
      'free regions you no longer need, or open the device with a larger arena (vhost-user:/path?arena=MiB)');
  }

  /**
   * See {@link DmaAllocator.free}: the arena's own region (or an exact copy) only,
   * E_INVALID_ARGUMENT otherwise; E_DMA_IN_USE while a live virtqueue uses it (also once the arena
   * is closed: the last free unmaps it, under a ring still read).
   */
  free(region: DmaRegion): void {
    const req = checkFreeArgument(region);
    const offset = Number(req.iova - this.guestBase);
    const held = this.live.get(offset);
    if (!held && this.closed) return;
    region = heldRegion(req, held, this.owner);
    this.guards.assertUnused(region.iova, region.size, this.owner);
    this.live.delete(offset);
    this.index.remove(region);
    if (this.closed) {
      if (this.live.size === 0) this.unmap();
      return;
    }
    const hole = { offset, size: alignUp(region.size, MIN_ALIGN) };
    const i = this.holes.findIndex((h) => h.offset > offset);
    this.holes.splice(i < 0 ? this.holes.length : i, 0, hole);
    const merged: Hole[] = [];
    for (const h of this.holes) {
      const last = merged.at(-1);
      if (last && last.offset + last.size === h.offset) last.size += h.size;
      else merged.push({ ...h });
    }
    this.holes = merged;
  }

  /** See {@link DmaAllocator.guardFree}. */
  guardFree(check: InUseCheck): () => void {
    return this.guards.add(check);
  }

  lookup(iova: bigint, len: number): DmaRegion | undefined {
    if (!isIovaRange(iova, len) || !Number.isSafeInteger(len) || len < 0) return undefined;
    return this.index.find(iova, len);
  }

  /**
   * Drops one holder; the last one unmaps the memory and closes the memfd — once every region
   * allocated from it is freed. A ring or buffer still in use (a driver not yet closed, a stop
   * still looking at a ring) keeps the mapping, so nothing ever reads or writes unmapped memory;
   * the last free() then unmaps it. New allocations are refused from the first close on.
   */
  close(): void {
    if (this.closed) return;
    if (--this.holders > 0) return;
    this.closed = true;
    this.holes = [];
    if (this.live.size === 0) this.unmap();
  }

  private unmap(): void {
    libc.munmap(this.map);
    libc.close(this.fd);
  }
}

// DMA memory: the interface every owner of an address space implements, and the heap allocator
// the reference device uses (plain memory, made-up IOVAs).
//
// A driver writes rings and buffers through `region.bytes`; it gives the device `region.iova`.
// Implementations: HeapDmaAllocator (here), VFIO type1 and no-IOMMU (lib/vfio), vhost-user memfd
// regions (lib/transport/vhost-user).

import { endianness } from 'node:os';
import { DmaError } from '../errors.js';
import { shown } from '../util/shown.js';
import { optionsObject, type OptionKeys } from '../util/options.js';
import { FreeGuards, type InUseCheck } from './free-guards.js';

export { FreeGuards, type InUseCheck };

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
  /**
   * Returns memory to the allocator. Using the region afterwards is a bug. Takes only a region
   * this allocator handed out and still holds: the object alloc() returned, or one with exactly
   * its `iova` and `size` (the accounting always goes by the region the allocator holds). Once the
   * allocator is closed, free() of a region it no longer holds does nothing (close released it).
   *
   * Memory a live virtqueue still uses is refused, nothing freed: a buffer (or any byte of it) that
   * a chain in flight points at — directly or through an indirect table — until the chain is used
   * (popUsed) or forgotten (the queue reset, failed or closed); the queue's ring memory and its
   * indirect tables until the queue is closed. The device would otherwise write memory the driver
   * no longer owns (VFIO: an IOVA unmapped under it, or reallocated to someone else).
   * @throws DmaError E_INVALID_ARGUMENT when `region` is not a region ({ iova: bigint, size: number }),
   *   is not one this allocator handed out (another allocator's, made up, or a look-alike of another
   *   size), or was already freed; E_DMA_IN_USE when a live virtqueue still uses it (the message
   *   names the queue and the chain in flight, the ring itself or an indirect table).
   */
  free(region: DmaRegion): void;
  /**
   * Registers a check free() consults before giving a region back (a virtqueue registers one when
   * it is created, covering its ring, indirect tables and chains in flight); returns the function
   * that removes it (the queue's close()). Optional: an allocator without it cannot refuse free()
   * of memory in use (every allocator in this SDK has it).
   */
  guardFree?(check: InUseCheck): () => void;
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
  /**
   * Whether `view(iova, len)` would succeed, without making the view (a device checking a
   * descriptor's buffer when it fetches the chain). Optional: without it, callers use `view`.
   */
  contains?(iova: bigint, len: number): boolean;
  /**
   * The whole region holding [iova, iova+len), for reading and writing in place without making a
   * view per access: the byte at `iova` is at index `Number(iova) - start` of `bytes` and `data`.
   * Optional, and allowed to answer undefined for any range (not owned, or no fast path): callers
   * then use `view`, which decides.
   */
  region?(iova: bigint, len: number): GuestRegion | undefined;
  /**
   * {@link region} for an address already held as a number (`at`: an integer below 2^52, e.g. a
   * descriptor's address read as two 32-bit halves), without converting a bigint on every access.
   * Optional, and allowed to answer undefined for any range, as region() is.
   */
  regionAt?(at: number, len: number): GuestRegion | undefined;
}

/** A region of driver memory as {@link GuestMemory.region} gives it: its bytes, a DataView on them, and its first address. */
export interface GuestRegion {
  /** The region's bytes. */
  readonly bytes: Uint8Array;
  /** A DataView over exactly `bytes`. */
  readonly data: DataView;
  /** The address of `bytes[0]`, as a number (exact: below 2^52). */
  readonly start: number;
}

/** `n` rounded up to a multiple of `align`. */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Region bounds below this compare exactly as numbers (2^52: far from 2^53 even with a 2^32 length added). */
const NUMERIC_LIMIT = 2n ** 52n;
/** 2^52: addresses below it are exact as numbers (GuestRegion.start, GuestMemory.regionAt). */
export const NUMERIC_BOUND = 2 ** 52;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/**
 * Checks the arguments of {@link DmaAllocator.alloc}.
 * @throws DmaError E_INVALID_ARGUMENT when size is not a positive integer or align not a power of two.
 */
export function checkAllocRequest(size: number, align: number): void {
  if (!Number.isInteger(size) || size <= 0) {
    throw new DmaError('E_INVALID_ARGUMENT', `DMA size must be a positive integer (bytes), got ${shown(size)}`);
  }
  if (!isPowerOfTwo(align)) {
    throw new DmaError('E_INVALID_ARGUMENT', `DMA alignment must be a power of two (bytes), got ${shown(align)}`);
  }
}

/**
 * Whether (iova, len) are of the kinds an address range has: a bigint IOVA and a number of bytes
 * (its value is checked by the lookup). lookup() answers undefined for other kinds and view()
 * refuses them (E_INVALID_ARGUMENT), before any arithmetic or message uses them.
 */
export function isIovaRange(iova: unknown, len: unknown): boolean {
  return typeof iova === 'bigint' && typeof len === 'number';
}

/** DmaError E_INVALID_ARGUMENT for a view() of something that is not an (iova, len) pair. */
export function badIovaRange(iova: unknown, len: unknown): DmaError {
  return new DmaError('E_INVALID_ARGUMENT', `a DMA view needs a bigint IOVA and a length in bytes, got ${shown(iova)} and ${shown(len)}`,
    'pass region.iova (a bigint) and a whole number of bytes');
}

/** What free() read from its argument, once: the object, and its iova and size. */
export interface FreeRequest {
  /** The object passed (an allocator's own region is matched by identity first). */
  readonly region: object;
  /** Its `iova`, read once. */
  readonly iova: bigint;
  /** Its `size`, read once. */
  readonly size: number;
}

/**
 * Reads free()'s argument once: an object with a bigint `iova` and an integer `size` (it need not
 * be the allocator's own: {@link heldRegion} decides that). A getter of the caller's that throws
 * surfaces the caller's error.
 * @throws DmaError E_INVALID_ARGUMENT otherwise (null, undefined, a number or bigint, …).
 */
export function checkFreeArgument(region: unknown): FreeRequest {
  if (typeof region === 'object' && region !== null) {
    const { iova, size } = region as Partial<DmaRegion>;
    if (typeof iova === 'bigint' && Number.isSafeInteger(size)) return { region, iova, size: size as number };
  }
  throw new DmaError('E_INVALID_ARGUMENT', `free() takes a DMA region ({ bytes, iova, size }) that alloc() returned, got ${shown(region)}`,
    'pass the region object alloc() returned (not its iova), once');
}

/**
 * The region an allocator holds that `req` names — the same object, or one with exactly its
 * iova and size — given what the allocator holds at `req.iova` (`held`).
 * @throws DmaError E_INVALID_ARGUMENT when there is none (never handed out, already freed, or a
 *   look-alike of another size). `owner` names the allocator in the message.
 */
export function heldRegion(req: FreeRequest, candidate: DmaRegion | undefined, owner: string): DmaRegion {
  const held = candidate !== undefined && candidate.iova === req.iova ? candidate : undefined;
  if (held !== undefined && (held === req.region || held.size === req.size)) return held;
  const at = `0x${req.iova.toString(16)}+${req.size}`;
  throw new DmaError('E_INVALID_ARGUMENT', held === undefined
    ? `free() of ${at}: ${owner} holds no region there (never allocated from it, or already freed)`
    : `free() of ${at}: ${owner}'s region there is ${held.size} bytes, not ${req.size}`,
  'free each region once, passing the object alloc() returned; a region of another allocator goes back to that one');
}

/**
 * Regions sorted by IOVA for {@link DmaAllocator.lookup}: the region hit last tried first, then a
 * binary search — every segment a queue set up by VirtioDevice adds is looked up once
 * (VirtqueueOptions.checkSegments), so this is on the hot path. Regions must not overlap.
 */
export class RegionIndex {
  private sorted: DmaRegion[] = [];
  private last: DmaRegion | undefined;

  /** Adds a region (alloc: not on the hot path). */
  add(region: DmaRegion): void {
    const at = this.firstAbove(region.iova);
    this.sorted.splice(at, 0, region);
  }

  /** Removes a region added before (by identity); a region not present is ignored. */
  remove(region: DmaRegion): void {
    const at = this.firstAbove(region.iova) - 1;
    if (at >= 0 && this.sorted[at] === region) this.sorted.splice(at, 1);
    if (this.last === region) this.last = undefined;
  }

  /** The region holding [iova, iova+len), or undefined. `len` a non-negative safe integer. */
  find(iova: bigint, len: number): DmaRegion | undefined {
    const l = this.last;
    if (l !== undefined && iova >= l.iova && iova + BigInt(len) <= l.iova + BigInt(l.size)) return l;
    const at = this.firstAbove(iova) - 1; // the last region starting at or below iova: the only candidate
    const r = this.sorted[at];
    if (r === undefined || iova + BigInt(len) > r.iova + BigInt(r.size)) return undefined;
    this.last = r;
    return r;
  }

  /** Forgets every region. */
  clear(): void {
    this.sorted = [];
    this.last = undefined;
  }

  /** Index of the first region starting above `iova`. */
  private firstAbove(iova: bigint): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]!.iova <= iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Options of {@link HeapDmaAllocator}. */
export interface HeapDmaOptions {
  /** The first IOVA handed out; default 0x1_0000_0000 so IOVAs never look like small numbers. */
  base?: bigint;
  /** Upper bound on the bytes handed out at once; default 1 GiB. */
  limit?: number;
}

/** HeapDmaOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const HEAP_DMA_OPTION_KEYS: OptionKeys<HeapDmaOptions> = { base: true, limit: true };

/**
 * Plain JavaScript memory with made-up IOVAs, for the in-process reference device. Each region is
 * its own ArrayBuffer; IOVAs are handed out upwards from `base` with a guard gap between regions so
 * that an overrun does not silently land in the next region.
 */
export class HeapDmaAllocator implements DmaAllocator, GuestMemory {
  private readonly regions = new Map<bigint, DmaRegion>();
  /**
   * The same regions sorted by IOVA, with their bounds as plain numbers, for the device's lookups
   * (every descriptor and every byte the device touches goes through one): a binary search, and
   * the last region hit tried first, with no BigInt arithmetic. IOVAs only grow, so alloc appends.
   */
  private sorted: DmaRegion[] = [];
  /** The same regions as GuestRegion (their DataView made once). */
  private spans: GuestRegion[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  /** Index into `sorted` of the region the last lookup found. */
  private last = 0;
  /** The region lookup() found last, and its bounds [hitStart, hitEnd) as BigInts; undefined once freed. */
  private hitRegion: DmaRegion | undefined = undefined;
  private hitStart = 0n;
  private hitEnd = 0n;
  /** Every region ends below NUMERIC_LIMIT, so bounds compare exactly as numbers. */
  private numeric = true;
  private next: bigint;
  private used = 0;
  private readonly limit: number;
  private closed = false;
  /** free() refuses memory a live virtqueue uses (DmaAllocator.guardFree). */
  private readonly guards = new FreeGuards();

  /**
   * Throws UsageError E_INVALID_ARGUMENT when `options` is not an object (null, an array, a
   * primitive) or has a key other than `base` and `limit`; DmaError E_INVALID_ARGUMENT when `base`
   * is not a non-negative bigint or `limit` not a positive integer.
   */
  constructor(options: HeapDmaOptions = {}) {
    options = optionsObject(options, 'HeapDmaAllocator options', HEAP_DMA_OPTION_KEYS);
    const { base, limit } = options;
    if (base !== undefined && (typeof base !== 'bigint' || base < 0n)) {
      throw new DmaError('E_INVALID_ARGUMENT', `HeapDmaAllocator base must be a non-negative bigint IOVA, got ${shown(base)}`);
    }
    if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)) {
      throw new DmaError('E_INVALID_ARGUMENT', `HeapDmaAllocator limit must be a positive integer (bytes), got ${shown(limit)}`);
    }
    this.next = base ?? 0x1_0000_0000n;
    this.limit = limit ?? 1 << 30;
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
    // IOVAs are handed out upwards: the new region sorts last.
    this.sorted.push(region);
    this.spans.push({ bytes: region.bytes, data: new DataView(region.bytes.buffer, region.bytes.byteOffset, size), start: Number(iova) });
    this.starts.push(Number(iova));
    this.ends.push(Number(iova) + size);
    if (iova + BigInt(size) >= NUMERIC_LIMIT) this.numeric = false;
    return region;
  }

  /** See {@link DmaAllocator.free}: the allocator's own region (or an exact copy) only, E_INVALID_ARGUMENT otherwise; E_DMA_IN_USE while a live virtqueue uses it. */
  free(region: DmaRegion): void {
    const req = checkFreeArgument(region);
    if (this.closed) return; // close() released every region
    const mine = heldRegion(req, this.regions.get(req.iova), 'the heap DMA allocator');
    this.guards.assertUnused(mine.iova, mine.size, 'the heap DMA allocator');
    this.regions.delete(mine.iova);
    this.used -= mine.size;
    if (this.hitRegion === mine) this.hitRegion = undefined;
    // The region held, not the object passed (an exact copy is accepted).
    const at = this.sorted.indexOf(mine);
    if (at >= 0) {
      this.sorted.splice(at, 1);
      this.spans.splice(at, 1);
      this.starts.splice(at, 1);
      this.ends.splice(at, 1);
      this.last = 0;
    }
  }

  /** See {@link DmaAllocator.guardFree}. */
  guardFree(check: InUseCheck): () => void {
    return this.guards.add(check);
  }

  lookup(iova: bigint, len: number): DmaRegion | undefined {
    if (!isIovaRange(iova, len) || len < 0 || !Number.isSafeInteger(len)) return undefined;
    // The driver's lookups (every segment a queue adds: VirtqueueOptions.checkSegments) compare in
    // BigInt only — Number(iova) costs more than the whole check — and keep their own last hit, so
    // they never move the device's (`last`, used by region() / view() for every ring access).
    const hit = this.hitRegion;
    if (hit !== undefined && iova >= this.hitStart && iova + BigInt(len) <= this.hitEnd) return hit;
    const sorted = this.sorted;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]!.iova <= iova) lo = mid + 1;
      else hi = mid;
    }
    // The last region starting at or below iova is the only candidate (regions do not overlap).
    const found = sorted[lo - 1];
    if (found === undefined) return undefined;
    const end = found.iova + BigInt(found.size);
    if (iova + BigInt(len) > end) return undefined;
    this.hitRegion = found;
    this.hitStart = found.iova;
    this.hitEnd = end;
    return found;
  }

  contains(iova: bigint, len: number): boolean {
    return Number.isSafeInteger(len) && this.lookup(iova, len) !== undefined;
  }

  region(iova: bigint, len: number): GuestRegion | undefined {
    if (typeof iova !== 'bigint') return undefined;
    return this.regionAt(Number(iova), len);
  }

  regionAt(at: number, len: number): GuestRegion | undefined {
    if (!this.numeric || !(len >= 0) || !Number.isSafeInteger(len) || !(at >= 0 && at < NUMERIC_BOUND) || !Number.isInteger(at)) return undefined;
    const i = this.find(at, len);
    return i < 0 ? undefined : this.spans[i];
  }

  view(iova: bigint, len: number): Uint8Array {
    if (!isIovaRange(iova, len)) throw badIovaRange(iova, len);
    const a = Number(iova);
    if (this.numeric && len >= 0 && Number.isSafeInteger(len) && a >= 0 && a < NUMERIC_BOUND) {
      const at = this.find(a, len);
      if (at >= 0) {
        const off = a - this.starts[at]!;
        return this.sorted[at]!.bytes.subarray(off, off + len);
      }
    } else if (Number.isSafeInteger(len) && len >= 0) {
      const r = this.slowLookup(iova, len);
      if (r) {
        const off = Number(iova - r.iova);
        return r.bytes.subarray(off, off + len);
      }
    }
    throw new DmaError('E_DMA_RANGE', `device access to 0x${iova.toString(16)}+${len} is outside the driver's memory`,
      'every address given to the device must lie in a region this allocator handed out (alloc) and not yet freed');
  }

  close(): void {
    this.regions.clear();
    this.sorted = [];
    this.spans = [];
    this.starts = [];
    this.ends = [];
    this.last = 0;
    this.hitRegion = undefined;
    this.used = 0;
    this.closed = true;
  }

  /** Index in `sorted` of the region holding [a, a+len), or -1: the last hit first, then a binary search. */
  private find(a: number, len: number): number {
    const starts = this.starts;
    const ends = this.ends;
    const last = this.last;
    if (last < starts.length && a >= starts[last]! && a + len <= ends[last]!) return last;
    // The last region starting at or below a is the only candidate (regions do not overlap).
    let lo = 0;
    let hi = starts.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= a) {
        at = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (at < 0 || a + len > ends[at]!) return -1;
    this.last = at;
    return at;
  }

  /** Exact BigInt comparison over every region: for addresses or lengths beyond the numeric fast path. */
  private slowLookup(iova: bigint, len: number): DmaRegion | undefined {
    if (len < 0) return undefined;
    for (const r of this.regions.values()) {
      if (iova >= r.iova && iova + BigInt(len) <= r.iova + BigInt(r.size)) return r;
    }
    return undefined;
  }
}

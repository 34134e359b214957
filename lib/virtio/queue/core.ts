// What the split and packed queues share: options and chain checks, the bookkeeping of chains in
// flight (keyed by split head index or packed buffer id), indirect tables, and the broken state.
// The layouts themselves (split.ts, packed.ts) only deal with their ring memory.

import type { DmaRegion, InUseCheck } from '../../mem/dma.js';
import { UsageError, VirtqueueError, type ErrorCode } from '../../errors.js';
import { isInstance, shown, thrownMessage } from '../../util/shown.js';
import { IndirectPool, type IndirectTable } from './indirect.js';
import type { Layout, QueueAddresses, QueueFeatures, Segment, VirtqueueOptions, VqDriverState } from './types.js';

const MAX_SEGMENT_LEN = 0xffff_ffff; // le32 len (virtio 1.2 §2.7.5, §2.8.13)
const MAX_CHAIN_BYTES = 2 ** 32; // virtio 1.2 §2.7.5.2: no chain longer than 2^32 bytes in total
/** QueueCore.live: a chain in flight. */
const LIVE = 1;
/** QueueCore.live: a chain of a broken queue (fail()) the device may still use: its buffers stay held until reset() or close(). */
const HELD = 2;

export abstract class QueueCore<T> {
  readonly index: number;
  readonly size: number;
  abstract readonly layout: Layout;
  abstract readonly addresses: QueueAddresses;
  protected readonly features: QueueFeatures;
  protected readonly notifyDevice: () => void;
  protected readonly region: DmaRegion;
  /** Little-endian accessors over the ring memory (the host is little-endian, see mem/dma.ts). */
  protected readonly ring: DataView;
  /**
   * The same memory as 16-bit words, for the stores that publish (split avail->idx, packed head
   * flags) and the loads that poll (used->idx, packed flags, event suppression fields).
   *
   * Ordering: those go through Atomics.store / Atomics.load, which are sequentially consistent.
   * V8 neither reorders plain typed-array accesses across them nor lets the CPU do so (x86-64 emits
   * a locked store, arm64 stlr/ldar), so they are the write barrier the spec asks for before a
   * publishing store (virtio 1.2 §2.7.13.3.1, §2.8.21.1.1), the barrier between publishing and
   * reading the notification suppression fields (§2.7.13.4, §2.8.21.2), and the read barrier
   * between seeing a used entry and reading its contents (§2.7.14, §2.8.22).
   */
  protected readonly ring16: Uint16Array;
  /**
   * The same memory as 32- and 64-bit words, for the descriptor stores and used-element loads of
   * the hot path (typed-array element accesses are cheaper than DataView calls, setBigUint64 most
   * of all). Null when the memory is not 8-byte aligned in its buffer (it always is for the
   * allocators in this SDK, but the interface does not promise it); `ring` is used then.
   */
  protected readonly ring32: Uint32Array | null;
  /** The ring memory as 64-bit words (descriptor addresses), or null exactly when `ring32` is. */
  protected readonly ring64: BigUint64Array | null;
  /** Descriptors free for new chains. */
  protected free: number;
  /** Whether the driver currently asks for used-buffer notifications. */
  protected interruptsWanted = true;

  private readonly dma: VirtqueueOptions['dma'];
  /** VirtqueueOptions.checkSegments: every segment must lie in one region of `dma`. */
  private readonly checkSegments: boolean;
  private readonly indirectThreshold: number;
  private readonly indirectPool: IndirectPool | null;
  private fault: VirtqueueError | null = null;
  private closed = false;
  /** Takes this queue's check off its allocator's free() guard (DmaAllocator.guardFree); null when the allocator has none. */
  private readonly unguard: (() => void) | null;

  // Chains in flight, by id: token, ring descriptors taken, writable bytes, indirect table.
  // live[id]: 0 free, LIVE a chain in flight, HELD a chain of a broken queue whose token fail()
  // returned but whose buffers the device (not reset yet) may still use, until reset() or close().
  private liveCount = 0;
  private heldCount = 0;
  private readonly live: Uint8Array;
  /** More users of memory this queue's chains will use (guardFree): consulted by the free() guard while the queue is open. */
  private readonly moreChecks: InUseCheck[] = [];
  private readonly tokens: (T | undefined)[];
  private readonly descsOf: Uint16Array;
  private readonly writableOf: Float64Array;
  /**
   * The chain being added, as checkChain() read it: each segment's address and length, read once
   * from the caller's objects, so the descriptors written are the values checked (a getter or a
   * Proxy cannot answer the check one thing and the writer another). Valid until the next add().
   */
  protected readonly chainAddr: bigint[];
  protected readonly chainLen: Uint32Array;
  /** Segments in the chain being added, and how many of them are device-readable (they come first). */
  protected chainSegments = 0;
  protected chainReadable = 0;
  /** checkChain() is reading a caller's segments (their getters run): an add() from inside one is refused. */
  private readingChain = false;
  private readonly tableOf: (IndirectTable | null)[];

  protected constructor(opts: VirtqueueOptions, ringBytes: number, ringAlign: number) {
    if (!Number.isInteger(opts.index) || opts.index < 0 || opts.index > 0xffff) {
      throw new UsageError('E_INVALID_ARGUMENT', `queue index must be an integer 0..65535, got ${opts.index}`);
    }
    const threshold = opts.indirectThreshold ?? 2;
    if (!(threshold >= 1)) {
      throw new UsageError('E_INVALID_ARGUMENT', `indirectThreshold must be at least 1, got ${threshold}`);
    }
    this.index = opts.index;
    this.size = opts.size;
    this.features = { ...opts.features };
    this.notifyDevice = opts.notify;
    this.dma = opts.dma;
    this.checkSegments = opts.checkSegments === true;
    this.indirectThreshold = threshold;
    this.indirectPool = opts.features.indirect ? new IndirectPool(opts.dma) : null;
    this.region = opts.dma.alloc(ringBytes, ringAlign);
    const { buffer, byteOffset } = this.region.bytes;
    this.ring = new DataView(buffer, byteOffset, ringBytes);
    this.ring16 = new Uint16Array(buffer, byteOffset, ringBytes >> 1);
    const aligned = byteOffset % 8 === 0;
    this.ring32 = aligned ? new Uint32Array(buffer, byteOffset, ringBytes >> 2) : null;
    this.ring64 = aligned ? new BigUint64Array(buffer, byteOffset, ringBytes >> 3) : null;
    this.free = this.size;
    this.live = new Uint8Array(this.size);
    this.tokens = new Array<T | undefined>(this.size);
    this.descsOf = new Uint16Array(this.size);
    this.writableOf = new Float64Array(this.size);
    this.chainAddr = new Array<bigint>(this.size).fill(0n);
    this.chainLen = new Uint32Array(this.size);
    this.tableOf = new Array<IndirectTable | null>(this.size).fill(null);
    // free() of the ring, an indirect table or a buffer in flight is refused while the queue is
    // open: the check scans at free() time, so add() and popUsed() pay nothing for it.
    this.unguard = opts.dma.guardFree?.((iova, size) => this.usedBy(iova, size)) ?? null;
  }

  get numFree(): number {
    return this.closed ? 0 : this.free;
  }

  get inFlight(): number {
    return this.liveCount;
  }

  get broken(): VirtqueueError | null {
    return this.fault;
  }

  canAdd(readable: number, writable: number): boolean {
    const n = readable + writable;
    if (this.fault || n < 1 || n > this.size) return false;
    return (this.usesIndirect(n) ? 1 : n) <= this.free;
  }

  fail(error: VirtqueueError): T[] {
    this.fault ??= error;
    // The device was not reset: it may still write into the chains' buffers, so they stay held
    // for the free() guard (usedBy) until reset() or close(); only their tokens go back.
    const tokens = this.inFlightTokens();
    for (let id = 0; id < this.size; id++) {
      if (this.live[id] !== LIVE) continue;
      this.tokens[id] = undefined;
      this.live[id] = HELD;
      this.liveCount--;
      this.heldCount++;
    }
    return tokens;
  }

  inFlightTokens(): T[] {
    const tokens: T[] = [];
    for (let id = 0; id < this.size; id++) if (this.live[id] === LIVE) tokens.push(this.tokens[id] as T);
    return tokens;
  }

  guardFree(check: InUseCheck): () => void {
    this.moreChecks.push(check);
    return () => {
      const at = this.moreChecks.indexOf(check);
      if (at >= 0) this.moreChecks.splice(at, 1);
    };
  }

  reset(): T[] {
    this.assertOpen();
    const tokens = this.forgetAll();
    this.region.bytes.fill(0);
    this.fault = null;
    this.free = this.size;
    this.interruptsWanted = true;
    this.restartRing();
    return tokens;
  }

  close(): void {
    if (this.closed) return;
    this.unguard?.(); // first: the ring and the tables are freed below
    this.forgetAll();
    this.moreChecks.length = 0;
    this.indirectPool?.close();
    this.dma.free(this.region);
    this.closed = true;
    this.fault = new VirtqueueError('E_CLOSED', this.index, 'the queue is closed');
  }

  exportState(): VqDriverState {
    const inFlight: VqDriverState['inFlight'] = [];
    for (let id = 0; id < this.size; id++) {
      if (this.live[id] === LIVE) inFlight.push({ id, descs: this.descsOf[id]!, writable: this.writableOf[id]! });
    }
    const hex = (a: bigint): string => `0x${a.toString(16)}`;
    const a = this.addresses;
    return {
      layout: this.layout,
      size: this.size,
      addresses: { desc: hex(a.desc), driver: hex(a.driver), device: hex(a.device) },
      ...this.ringIndices(),
      inFlight,
    };
  }

  /** Sets the layout's indices and free lists back to their initial values (memory is already zero). */
  protected abstract restartRing(): void;
  /**
   * Descriptor entry `e` of a chain in flight as the driver wrote it, for the free() guard (never
   * on the hot path): its address and length, and the chain's next entry. Entries are the split
   * ring's descriptor indices (the table in ring memory, which only the driver writes, and the
   * driver's own links) or the packed ring's shadow entries (its ring slots are overwritten by
   * used descriptors). A chain's first entry is its id. Must not throw for any `e` below `size`.
   */
  protected abstract entryAddr(e: number): bigint;
  protected abstract entryLen(e: number): number;
  protected abstract entryNext(e: number): number;
  protected abstract ringIndices(): { nextAvail: number; lastUsed: number };

  /**
   * Throws unless the queue takes new chains and the chain is well formed; returns the bytes the
   * device may write. Checks come before any change, so a failed add leaves the queue as it was.
   */
  protected checkChain(readable: readonly Segment[], writable: readonly Segment[]): number {
    this.assertUsable();
    if (this.readingChain) {
      throw this.badChain('add() was called from inside a segment being read for another add() on this queue',
        'do not add chains from a getter of a segment; build the segments before the call');
    }
    this.readingChain = true;
    let writableBytes: number;
    try {
      writableBytes = this.readChain(readable, writable);
    } catch (e) {
      this.readingChain = false;
      // A caller's getter or Proxy threw: the chain is not one (nothing was changed yet).
      throw isInstance(e, VirtqueueError) ? e : this.badChain(`the chain could not be read: ${thrownMessage(e)}`);
    }
    this.readingChain = false;
    // The caller's getters ran: one of them may have closed or broken this queue meanwhile.
    this.assertUsable();
    return writableBytes;
  }

  /** Throws E_CLOSED when the queue is closed, E_QUEUE_BROKEN when it is broken. */
  private assertUsable(): void {
    if (this.fault) {
      if (this.closed) throw this.fault;
      throw new VirtqueueError('E_QUEUE_BROKEN', this.index, `the queue is broken (${this.fault.code})`,
        'reset the device and the queue, or recreate them');
    }
  }

  /** checkChain's reading: every length and segment read once, into chainAddr / chainLen. */
  private readChain(readable: readonly Segment[], writable: readonly Segment[]): number {
    // Array.isArray throws for a revoked Proxy: checkChain turns that into E_BAD_CHAIN.
    if (!Array.isArray(readable) || !Array.isArray(writable)) {
      throw this.badChain(`readable and writable must be arrays of segments, got ${shown(readable)} and ${shown(writable)}`);
    }
    const r: unknown = readable.length;
    const w: unknown = writable.length;
    // A Proxy's length may be anything: only whole, non-negative counts make a chain.
    if (!Number.isSafeInteger(r) || !Number.isSafeInteger(w) || (r as number) < 0 || (w as number) < 0) {
      throw this.badChain(`the segment arrays' lengths must be whole numbers, got ${shown(r)} and ${shown(w)}`);
    }
    const n = (r as number) + (w as number);
    if (!(n > 0)) throw this.badChain('a chain needs at least one segment');
    if (n > this.size) {
      // virtio 1.2 §2.7.5.3.1 and §2.8.17: no chain longer than the queue size, indirect or not.
      throw this.badChain(`a chain of ${n} segments can never fit a queue of size ${this.size}`);
    }
    const readableBytes = this.readSegments(readable, r as number, 0, 'readable');
    const writableBytes = this.readSegments(writable, w as number, r as number, 'writable');
    if (readableBytes + writableBytes > MAX_CHAIN_BYTES) {
      throw this.badChain('the chain is longer than 2^32 bytes in total (virtio 1.2 §2.7.5.2)');
    }
    this.chainSegments = n;
    this.chainReadable = r as number;
    return writableBytes;
  }

  private usesIndirect(segments: number): boolean {
    return this.indirectPool !== null && segments >= this.indirectThreshold;
  }

  /**
   * Decides how a chain of `segments` goes into the ring — through an indirect table (returned;
   * it takes one ring descriptor) or directly (null; one descriptor per segment) — and throws
   * E_QUEUE_FULL when the ring has no room for it now. Both layouts' add() start here.
   */
  protected reserve(segments: number): IndirectTable | null {
    const indirect = this.usesIndirect(segments);
    const descs = indirect ? 1 : segments;
    if (descs > this.free) {
      throw new VirtqueueError('E_QUEUE_FULL', this.index, `${descs} descriptors needed, ${this.free} free`,
        'wait for used buffers (popUsed) and add again');
    }
    return indirect ? this.indirectPool!.take(segments) : null;
  }

  /** The device broke the ring protocol: the queue is broken for good (until reset). */
  protected deviceFault(code: ErrorCode, message: string): VirtqueueError {
    this.fault = new VirtqueueError(code, this.index, message,
      'the device wrote an invalid used ring; reset it (its pending requests were rejected)', true);
    return this.fault;
  }

  /** Throws what broke the queue (for popUsed). */
  protected assertNotBroken(): void {
    if (this.fault) throw this.fault;
  }

  protected track(id: number, token: T, descs: number, writable: number, table: IndirectTable | null): void {
    this.live[id] = LIVE;
    this.tokens[id] = token;
    this.descsOf[id] = descs;
    this.writableOf[id] = writable;
    this.tableOf[id] = table;
    this.liveCount++;
    this.free -= descs;
  }

  protected isLive(id: number): boolean {
    return id < this.size && this.live[id] === LIVE;
  }

  protected descsIn(id: number): number {
    return this.descsOf[id]!;
  }

  protected writableIn(id: number): number {
    return this.writableOf[id]!;
  }

  /** Forgets a used chain and returns its token; the layout frees its ring slots. */
  protected release(id: number): T {
    const token = this.tokens[id] as T;
    const table = this.tableOf[id];
    if (table) {
      this.indirectPool!.give(table);
      this.tableOf[id] = null;
    }
    this.tokens[id] = undefined;
    if (this.live[id] === HELD) this.heldCount--;
    else this.liveCount--;
    this.live[id] = 0;
    this.free += this.descsOf[id]!;
    return token;
  }

  /** Checks the first `count` segments, copies them to chainAddr / chainLen from `at`, and returns their total length. */
  private readSegments(segments: readonly Segment[], count: number, at: number, kind: 'readable' | 'writable'): number {
    let total = 0;
    const addrs = this.chainAddr;
    const lens = this.chainLen;
    for (let i = 0; i < count; i++) {
      const segment = segments[i];
      if (typeof segment !== 'object' || segment === null) throw this.badChain(`a segment must be an object { addr, len }, got ${shown(segment)}`);
      const { addr, len } = segment;
      if (!Number.isInteger(len) || len < 1 || len > MAX_SEGMENT_LEN) {
        throw this.badChain(`segment length must be an integer 1..${MAX_SEGMENT_LEN}, got ${shown(len)}`);
      }
      // In 0..2^64-1 exactly when truncating to 64 unsigned bits changes nothing (one BigInt
      // operation instead of two comparisons, which cost more in V8).
      if (typeof addr !== 'bigint' || BigInt.asUintN(64, addr) !== addr) {
        throw this.badChain(`segment address must be a 64-bit bigint, got ${shown(addr)}`);
      }
      // The caller's mistake caught here, not the device's fault later (one lookup: the allocator's
      // last-hit cache makes consecutive segments of one buffer cheap).
      if (this.checkSegments && this.dma.lookup(addr, len) === undefined) {
        throw this.badChain(`${kind} segment ${i} at 0x${addr.toString(16)}+${len} is not inside the device's DMA memory (never allocated, freed, or running past its region's end)`,
          'give the device only memory from device.dma: a region alloc() returned and not yet freed, each segment within that region; nothing was added');
      }
      addrs[at + i] = addr;
      lens[at + i] = len;
      total += len;
    }
    return total;
  }

  private badChain(message: string, hint = 'pass two arrays of plain segments { addr: a 64-bit bigint, len: 1 to 2^32 - 1 }, at least one and at most the queue size in all; nothing was added'): VirtqueueError {
    return new VirtqueueError('E_BAD_CHAIN', this.index, message, hint);
  }

  /**
   * The free() guard's check (DmaAllocator.guardFree): what of [iova, iova+size) this open queue
   * still uses — its ring, an indirect table (a slab of the pool, free or in use), what a check
   * added with guardFree() names (requests waiting to become chains), or a buffer a chain in
   * flight (or held by a broken queue, see fail()) points at, directly or through its indirect
   * table (virtio 1.2 §2.7.5.3, §2.8.7) — or undefined. Bounded by the chains in flight whatever a device wrote: links and
   * counts are the driver's own; only split descriptors' and indirect tables' addr/len are read
   * from shared memory, and a value scribbled there can at worst change the answer.
   */
  private usedBy(iova: bigint, size: number): string | undefined {
    if (this.closed) return undefined;
    const end = iova + BigInt(size);
    const overlaps = (addr: bigint, len: number): boolean => addr < end && iova < addr + BigInt(len);
    const q = `queue ${this.index}`;
    if (overlaps(this.region.iova, this.region.size)) return `it is the ring itself of ${q}, which is open`;
    if (this.indirectPool?.overlaps(iova, end)) return `it holds an indirect table of ${q}, which is open`;
    // Requests that will become chains (a RequestQueue's waiting ones): their owners' checks.
    for (const check of this.moreChecks) {
      const user = check(iova, size);
      if (user !== undefined) return user;
    }
    if (this.liveCount + this.heldCount === 0) return undefined;
    const at = (addr: bigint, len: number): string => `0x${addr.toString(16)}+${len}`;
    for (let id = 0; id < this.size; id++) {
      if (this.live[id] === 0) continue;
      const chain = this.live[id] === HELD ? `chain ${id} of broken ${q} (the device was not reset: it may still use it)` : `chain ${id} in flight on ${q}`;
      const table = this.tableOf[id];
      const descs = this.descsOf[id]!;
      let e = id;
      for (let i = 0; i < descs && e < this.size; i++, e = this.entryNext(e)) {
        const addr = this.entryAddr(e);
        const len = this.entryLen(e);
        if (table === null) {
          if (overlaps(addr, len)) return `${chain} uses ${at(addr, len)} of it`;
          continue;
        }
        // An indirect chain's one ring descriptor: the table's entries, as many as its length
        // says (within the table: a scribbled length reads no further). addr at byte 0 and len at
        // byte 8 of an entry in both layouts (virtio 1.2 §2.7.5, §2.8.13).
        const count = Math.min(Math.floor(len / 16), table.view.byteLength >> 4);
        for (let k = 0; k < count; k++) {
          const a = table.view.getBigUint64(16 * k, true);
          const l = table.view.getUint32(16 * k + 8, true);
          if (overlaps(a, l)) return `${chain} uses ${at(a, l)} of it (through an indirect table)`;
        }
      }
    }
    return undefined;
  }

  /** Forgets every chain, in flight or held by a broken queue; returns the tokens of those in flight. */
  private forgetAll(): T[] {
    const tokens = this.inFlightTokens();
    for (let id = 0; id < this.size; id++) if (this.live[id] !== 0) this.release(id);
    return tokens;
  }

  private assertOpen(): void {
    if (this.closed) throw new VirtqueueError('E_CLOSED', this.index, 'the queue is closed');
  }
}

/** virtio 1.2 §2.7.10 / §2.8.10 (EVENT_IDX): was `event` among the indices in [old, now), modulo `m`? */
export function needsEvent(event: number, now: number, old: number, m: number): boolean {
  // The spec's (u16)(new − event − 1) < (u16)(new − old), with the modulus as a parameter so the
  // packed ring can use positions modulo 2 × size. Inputs lie in [0, m).
  return (now - event - 1 + 2 * m) % m < (now - old + m) % m;
}

// The driver-side virtqueue, split and packed behind one interface (virtio 1.2 §2.6–§2.8).
//
// A queue moves chains of buffers: device-readable segments first, then device-writable ones,
// each chain carrying a caller token that comes back when the device marks it used. The queue
// does not own the buffers; it owns the ring memory and, with INDIRECT_DESC, indirect tables.

import type { DmaAllocator, InUseCheck } from '../../mem/dma.js';
import type { VirtqueueError } from '../../errors.js';
import type { SplitRingIndices } from '../../transport/state.js';

import type { Layout, Segment, QueueAddresses } from '../../spec/ring.js';

export type { Layout, Segment, QueueAddresses };

/**
 * The negotiated transport features that change how a virtqueue lays out and suppresses work
 * (virtio 1.2 §6: VIRTIO_F_INDIRECT_DESC and VIRTIO_F_EVENT_IDX). Both false means plain chains
 * and flag-based notification suppression.
 */
export interface QueueFeatures {
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
}

/**
 * What a split or packed virtqueue is built from: its queue index, size, the DMA allocator its
 * ring memory comes from, the negotiated queue features and the notify callback.
 */
export interface VirtqueueOptions {
  /** The queue's index on the device (0-based, as in queue_select; virtio 1.2 §4.1.4.3). */
  index: number;
  /** Split: a power of two from 2 to 32768. Packed: 1 to 32768. */
  size: number;
  /** Where ring memory (and indirect tables) is allocated: device-visible, with bus addresses. */
  dma: DmaAllocator;
  /** Which of INDIRECT_DESC and EVENT_IDX the device and driver negotiated. */
  features: QueueFeatures;
  /** Performs the available-buffer notification (the transport's notify store). */
  notify: () => void;
  /**
   * With INDIRECT_DESC, chains with at least this many segments go through an indirect table
   * (default 2). Set to Infinity to never use indirect descriptors.
   */
  indirectThreshold?: number;
  /**
   * Whether add() refuses (E_BAD_CHAIN, nothing added) a segment that is not wholly inside one
   * region `dma` holds ({@link DmaAllocator.lookup}): an IOVA never allocated, a freed region, a
   * length running past its region's end — the caller's mistake, caught before the device sees
   * it. One lookup per segment. VirtioDevice.setupQueue turns it on; default false for a queue
   * built by hand (createVirtqueue) over a device model that owns its own address space.
   */
  checkSegments?: boolean;
}

/**
 * One chain the device has returned (a used ring element, virtio 1.2 §2.7.8; a used descriptor, §2.8),
 * paired with the token the driver passed to {@link Virtqueue.add}.
 */
export interface UsedElement<T> {
  /** The token given with the chain when it was added. */
  token: T;
  /** Bytes the device wrote into the device-writable part of the chain (validated ≤ its size). */
  len: number;
}

/**
 * The driver's side of a queue's state, as plain data: enough to rebuild the queue object over the
 * same ring memory (in another process, say). Indices use the provisional state encoding: split a
 * free-running 16-bit index; packed bits 0–14 index and bit 15 the wrap counter.
 */
export interface VqDriverState {
  /** Split or packed ring format. */
  layout: Layout;
  /** Queue size in descriptors. */
  size: number;
  /** Bus addresses of the three ring areas, as hex strings ("0x…") so that 64-bit values survive JSON. */
  addresses: {
    /** Descriptor table (split) or descriptor ring (packed). */
    desc: string;
    /** Driver area: the available ring (split) or driver event suppression structure (packed). */
    driver: string;
    /** Device area: the used ring (split) or device event suppression structure (packed). */
    device: string;
  };
  /** Split: avail->idx the driver last published. Packed: next slot to fill + driver wrap counter. */
  nextAvail: number;
  /** Split: the used index the driver has consumed up to. Packed: next used slot + used wrap counter. */
  lastUsed: number;
  /** Chains the device has not returned, by head (split) or buffer id (packed). */
  inFlight: {
    /** Head descriptor index (split) or buffer id (packed). */
    id: number;
    /** Descriptors the chain occupies in the ring (1 for a chain sent through an indirect table). */
    descs: number;
    /** Total size in bytes of the chain's device-writable segments (the bound a used len is checked against). */
    writable: number;
  }[];
}

/**
 * A driver-side virtqueue (virtio 1.2 §2.6; split ring §2.7, packed ring §2.8): adds buffer chains
 * with a token of type `T`, notifies the device, and hands back used chains with their tokens.
 * Device-written ring contents are validated; a device that breaks the ring protocol turns the
 * queue broken and the fault surfaces as a {@link VirtqueueError} with an E_DEVICE_* code.
 */
export interface Virtqueue<T = unknown> {
  /** The queue's index on the device (0-based). */
  readonly index: number;
  /** Queue size in descriptors. */
  readonly size: number;
  /** Split or packed ring format. */
  readonly layout: Layout;
  /** Bus addresses of the descriptor, driver and device areas, as programmed into the transport. */
  readonly addresses: QueueAddresses;
  /** Descriptors free for new chains. */
  readonly numFree: number;
  /** Chains made available and not yet returned by the device. */
  readonly inFlight: number;
  /** The fault that broke the queue, or null. A broken queue accepts nothing and returns nothing. */
  readonly broken: VirtqueueError | null;

  /**
   * Adds a chain (readable segments, then writable ones) with its token and makes it available at
   * once (a polling device may take it before kick). Does not notify.
   * Throws E_QUEUE_FULL when there is no room now (back-pressure: wait for used buffers),
   * E_BAD_CHAIN when the chain can never fit or is malformed (or, with
   * VirtqueueOptions.checkSegments — every queue VirtioDevice sets up — a segment is not inside
   * one region of the queue's DmaAllocator), E_QUEUE_BROKEN when broken. Nothing is added then.
   */
  add(readable: readonly Segment[], writable: readonly Segment[], token: T): void;
  /** Whether a chain of this shape fits now. */
  canAdd(readable: number, writable: number): boolean;
  /**
   * Notifies the device of the chains added since the last kick unless it suppressed notifications
   * (flags, or EVENT_IDX's rule of virtio 1.2 §2.7.10 / §2.8.10). Returns whether it notified
   * (false when nothing was added since the last kick).
   */
  kick(): boolean;
  /**
   * The next used chain, or null when none is ready. Validates what the device wrote; on a
   * violation the queue becomes broken and the VirtqueueError is thrown.
   */
  popUsed(): UsedElement<T> | null;
  /**
   * Asks the device for used-buffer notifications. Returns false when used buffers are already
   * pending (poll again). On a broken queue it does nothing and returns true.
   */
  enableInterrupts(): boolean;
  /**
   * Asks the device not to send used-buffer notifications (flags or, with EVENT_IDX, the event
   * index; virtio 1.2 §2.7.7 / §2.8.10). Advisory: the device may still notify.
   */
  disableInterrupts(): void;
  /**
   * Marks the queue broken (e.g. the transport failed, the device broke the ring) and returns the
   * tokens of every chain in flight. The device has not been reset, so their buffers stay held for
   * DmaAllocator.free() (refused E_DMA_IN_USE) until reset() or close().
   */
  fail(error: VirtqueueError): T[];
  /**
   * Adds a check to this queue's free() guard (DmaAllocator.guardFree) for memory its chains will
   * use — a RequestQueue's requests waiting to be added — consulted while the queue is open;
   * returns the function that removes it. The check answers as an {@link InUseCheck}: a clause
   * naming the user, or undefined; it must not throw and must finish in bounded time.
   */
  guardFree(check: InUseCheck): () => void;
  /**
   * Whether the device has marked a chain used that popUsed() has not taken yet. Reads device
   * memory once and changes nothing (a reinit checks that a device it gave up on did no work).
   */
  usedPending(): boolean;
  /** The tokens of every chain in flight, without returning them (for stop/state reporting). */
  inFlightTokens(): T[];
  /**
   * Forgets every chain in flight and zeroes the rings, as after a device reset: the queue restarts
   * at index 0 and is no longer broken. Returns the forgotten chains' tokens.
   */
  reset(): T[];
  /** The driver's side of the queue as plain data (see {@link VqDriverState}), for stop/state reporting and rebuild. */
  exportState(): VqDriverState;
  /** A split ring's avail->idx and used->idx in ring memory (QueueSetup.ring); undefined for a packed ring. */
  splitIndices(): SplitRingIndices | undefined;
  /** Frees ring memory and indirect tables. The queue is then broken with E_CLOSED. */
  close(): void;
}

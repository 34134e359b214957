// The driver-side virtqueue, split and packed behind one interface (virtio 1.2 §2.6–§2.8).
//
// A queue moves chains of buffers: device-readable segments first, then device-writable ones,
// each chain carrying a caller token that comes back when the device marks it used. The queue
// does not own the buffers; it owns the ring memory and, with INDIRECT_DESC, indirect tables.

import type { DmaAllocator } from '../../mem/dma.js';
import type { VirtqueueError } from '../../errors.js';
import type { SplitRingIndices } from '../../transport/state.js';

import type { Layout, Segment, QueueAddresses } from '../../spec/ring.js';

export type { Layout, Segment, QueueAddresses };

export interface QueueFeatures {
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
}

export interface VirtqueueOptions {
  index: number;
  /** Split: a power of two from 2 to 32768. Packed: 1 to 32768. */
  size: number;
  dma: DmaAllocator;
  features: QueueFeatures;
  /** Performs the available-buffer notification (the transport's notify store). */
  notify: () => void;
  /**
   * With INDIRECT_DESC, chains with at least this many segments go through an indirect table
   * (default 2). Set to Infinity to never use indirect descriptors.
   */
  indirectThreshold?: number;
}

export interface UsedElement<T> {
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
  layout: Layout;
  size: number;
  addresses: { desc: string; driver: string; device: string }; // hex, "0x…"
  /** Split: avail->idx the driver last published. Packed: next slot to fill + driver wrap counter. */
  nextAvail: number;
  /** Split: the used index the driver has consumed up to. Packed: next used slot + used wrap counter. */
  lastUsed: number;
  /** Chains the device has not returned, by head (split) or buffer id (packed). */
  inFlight: { id: number; descs: number; writable: number }[];
}

export interface Virtqueue<T = unknown> {
  readonly index: number;
  readonly size: number;
  readonly layout: Layout;
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
   * E_BAD_CHAIN when the chain can never fit or is malformed, E_QUEUE_BROKEN when broken.
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
  disableInterrupts(): void;
  /** Marks the queue broken (e.g. the transport failed) and returns the tokens of every chain in flight. */
  fail(error: VirtqueueError): T[];
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
  exportState(): VqDriverState;
  /** A split ring's avail->idx and used->idx in ring memory (QueueSetup.ring); undefined for a packed ring. */
  splitIndices(): SplitRingIndices | undefined;
  /** Frees ring memory and indirect tables. The queue is then broken with E_CLOSED. */
  close(): void;
}

// Who owns a driver's DMA buffers, and frees them once the device was reset. RxBuffers: the receive
// buffers one receive queue keeps posted (net's receiveqs, the console's port receiveqs and control
// receiveq), and what becomes of one the queue refuses. TxPool: transmit buffers reused from send to
// send (net, console ports and control), and what becomes of one that comes back after close().
//
// Every buffer allocated here stays on `all` until release(), whether it is posted, held back by
// its owner (a full console reader) or kept idle: close() frees them all once the device was reset
// (never before: the device may still write into a posted one), and a failed open() the same.
//
// While the queue refuses new requests — a failed device being reset: QueueSet.settleFailure halts
// every queue, resets, then takes the used ring, whose buffers their owners post again at once — a
// buffer is kept idle here instead of being submitted (the RequestQueue would refuse it and it would
// be lost: after a few failures the queue runs with none). restart(), after recover() / reinit(),
// posts the idle ones again, so the queue has as many buffers posted as before the failure. The
// RequestQueue is not asked to hold them: it refuses while halted, and this layer, which owns the
// buffers, decides what to do with one refused.

import type { DmaAllocator, DmaRegion } from '../lib/mem/dma.js';
import type { RequestQueue } from '../lib/virtio/request-queue.js';

/** The receive buffers of one receive queue (see the top of this file). */
export class RxBuffers {
  /** Every buffer allocated for this queue and not yet freed. */
  private readonly all: DmaRegion[] = [];
  /** Buffers a halted or broken queue would have refused: posted again by restart(). */
  private readonly idle: DmaRegion[] = [];

  constructor(
    private readonly rq: RequestQueue<DmaRegion>,
    private readonly dma: DmaAllocator,
    /** The owner's driver is closed: a buffer refused then is not kept (release() frees it). */
    private readonly closed: () => boolean,
    /** Submits one buffer to the queue (the owner's callback and poisoning). */
    private readonly submit: (buf: DmaRegion) => void,
  ) {}

  /** A new buffer of `bytes` owned here (freed by release()), not yet posted. */
  alloc(bytes: number): DmaRegion {
    const buf = this.dma.alloc(bytes, 64);
    this.all.push(buf);
    return buf;
  }

  /** Submits `buf`, or keeps it idle while the queue refuses requests (halted by a failure, or broken). */
  post(buf: DmaRegion): void {
    if (this.rq.haltedBy || this.rq.error) {
      if (!this.closed()) this.idle.push(buf);
      return;
    }
    this.submit(buf);
  }

  /** The device is live again (after recover() / reinit()): the idle buffers are posted again. */
  restart(): void {
    // Taken first: a queue still refusing (recover() failed) keeps them idle again, once each.
    for (const buf of this.idle.splice(0)) this.post(buf);
  }

  /** Frees every buffer: only after the device was reset (or never reached DRIVER_OK). */
  release(): void {
    this.idle.length = 0;
    for (const b of this.all.splice(0)) this.dma.free(b);
  }
}

/**
 * The transmit buffers of one port number: allocated as writes need them, up to `max`, and shared
 * by every stream that number has (a port removed and added again, or recovered, takes its
 * predecessor's), so a device that adds and removes a port over and over costs no more DMA memory.
 * Freed only by release(), after the device was reset.
 */
export class TxPool {
  private readonly free: DmaRegion[] = [];
  private allocated = 0;
  private waiters: (() => void)[] = [];
  /** release() ran: a buffer given back later (in flight at close()) is freed at once. */
  private released = false;

  constructor(private readonly dma: DmaAllocator, /** Bytes per buffer. */ readonly bytes: number, private readonly max: number) {}

  /** A free buffer, or a new one while fewer than `max` exist; undefined when every one is in the ring (then wait()). */
  take(): DmaRegion | undefined {
    const b = this.free.pop();
    if (b || this.allocated >= this.max) return b;
    const fresh = this.dma.alloc(this.bytes, 64);
    this.allocated++;
    return fresh;
  }

  /** A buffer the device gave back. */
  give(buf: DmaRegion): void {
    if (this.released) this.dma.free(buf);
    else this.free.push(buf);
    this.wake();
  }

  /** Resolves at the next give() or wake(). */
  wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Lets every waiter look again (a stream ended). */
  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Frees the buffers not in the ring: only after the device was reset. */
  release(): void {
    this.released = true;
    for (const b of this.free.splice(0)) this.dma.free(b);
  }
}

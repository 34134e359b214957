// The receive buffers one receive queue keeps posted (net's receiveqs, the console's port receiveqs
// and control receiveq): who owns them, and what becomes of one the queue refuses.
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

  /** Buffers kept idle now. */
  get idleCount(): number {
    return this.idle.length;
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

// One receive queue: its buffers kept posted (each refilled as soon as its contents are copied
// out) and frames put back together. Without MRG_RXBUF a buffer holds a whole frame; with it the
// header's num_buffers says how many consecutive used buffers the frame spans (virtio 1.2
// §5.1.6.4.2). The device is not trusted: a num_buffers of 0 or beyond the ring is counted as
// malformed and the frame dropped.
//
// Every buffer is either posted or, while the queue refuses new requests (a failed device being
// reset: the used ring is taken after the queue was halted), kept idle until the device is back:
// restart() posts the idle ones again, so after recover()/reinit() exactly as many buffers are
// posted as before the failure. drivers/dma-buffers.ts owns them (the console's receive queues use
// it too) and frees them at close().

import { NET_HDR_LEN, NetHdr } from '../../lib/spec/index.js';
import { RequestError, type UvirtioError } from '../../lib/errors.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { CompletionCallback } from '../../lib/virtio/request.js';
import { readNetHeader, type NetHeader } from './header.js';
import { RxBuffers } from '../dma-buffers.js';

/** The gso_type poison of a posted buffer: no VIRTIO_NET_HDR_GSO_* value (0, 1, 3, 4, 5, with ECN 0x80). */
const UNWRITTEN_GSO = 0xff;

/** One frame the device delivered on a receive queue (virtio 1.2 §5.1.6.4), as given to frame listeners. */
export interface ReceivedFrame {
  /** The virtio_net_hdr the device wrote (raw bytes: 12, a view into the same copy as a one-buffer frame). */
  header: Uint8Array;
  /** The same, decoded. */
  hdr: NetHeader;
  /** The frame after the header (an Ethernet frame without FCS), copied out of DMA memory so the listener may keep it; with MRG_RXBUF joined from every buffer it spans. */
  frame: Uint8Array;
  /** The queue pair it arrived on. */
  pair: number;
}

interface Partial {
  header: Uint8Array;
  hdr: NetHeader;
  parts: Uint8Array[];
  left: number;
}

export class RxQueue {
  /** Receive buffers dropped because the device described them impossibly. */
  malformed = 0;
  /** The last of those, with its code. */
  lastMalformed: UvirtioError | null = null;
  private partial: Partial | undefined;
  /** The buffers, posted or kept idle while the queue is halted (restart()), freed by release(). */
  private readonly buffers: RxBuffers;
  /**
   * With MRG_RXBUF a malformed first buffer lost the frame boundaries: nothing is delivered (the
   * buffers are only posted again) until the device is back from recover() / reinit().
   */
  private desynced = false;
  /** A recover() ('reset') or reinit() under way: see restarting(). */
  private fresh: 'reset' | 'reinit' | undefined;

  constructor(
    private readonly rq: RequestQueue<DmaRegion>,
    dma: DmaAllocator,
    readonly pair: number,
    private readonly mergeable: boolean,
    private readonly deliver: (f: ReceivedFrame) => void,
    private readonly closed: () => boolean,
    /**
     * With MRG_RXBUF a bad first buffer leaves no way to know where its frame ends: the buffers
     * after it would be read as frames of their own. The receive stream has lost its frame
     * boundaries; the device is failed (reset, recover()) instead.
     */
    private readonly desync: (e: UvirtioError) => void,
  ) {
    this.buffers = new RxBuffers(rq, dma, closed, (buf) => {
      buf.bytes[NetHdr.GSO_TYPE] = UNWRITTEN_GSO;
      // A callback, not a promise: it runs inside the used-ring pass that found the buffer, and the
      // buffers posted again in one pass share one notification (kickNow false: a microtask kicks).
      this.rq.submitCb([], [{ addr: buf.iova, len: buf.size }], buf, this.filled, false);
    });
  }

  /** Allocates `count` buffers of `bytes` and posts them. */
  fill(count: number, bytes: number): void {
    for (let i = 0; i < count; i++) this.post(this.buffers.alloc(bytes));
  }

  /**
   * Posts `buf`; when the device fills it, its bytes are taken and it is posted again. The header's
   * gso_type is poisoned first (UNWRITTEN_GSO, a type no device writes): the device writes a whole
   * header into a frame's first buffer (§5.1.6.4), so a "used" buffer that still shows the poison
   * was never written — a stale used element, which a split ring cannot otherwise tell from a fresh
   * one — and is dropped as malformed instead of delivered as a frame. While the queue is halted (a
   * failed device being reset) the buffer is kept idle instead, for restart().
   */
  private post(buf: DmaRegion): void {
    // A halted or broken queue would refuse the request (its callback gets the error) and the
    // buffer would be lost: RxBuffers keeps it idle for restart().
    this.buffers.post(buf);
  }

  /**
   * Called before the device is brought back (recover(): `reset` true; reinit(): false). The
   * first buffer taken once the queue is no longer halted — or restart(), whichever comes first —
   * ends a desync and, after a reset, drops the frame half taken before it (the reset ring forgot
   * the rest). Not now: the failure may still be settling, and the used elements it takes are
   * the device's real output, continuations included.
   */
  restarting(reset: boolean): void {
    this.fresh = reset ? 'reset' : 'reinit';
  }

  /** The device is live again (after recover() / reinit()): the idle buffers are posted again. */
  restart(): void {
    this.startFresh();
    this.buffers.restart();
  }

  /** Frees every buffer: only after the device was reset (close(), a failed open()). */
  release(): void {
    this.buffers.release();
  }

  private startFresh(): void {
    if (!this.fresh) return;
    this.desynced = false;
    if (this.fresh === 'reset') this.partial = undefined;
    this.fresh = undefined;
  }

  /** A posted buffer came back: its bytes are taken and it is posted again. An error (a broken or closed queue) surfaces on send() and through device health. */
  private readonly filled: CompletionCallback<DmaRegion> = (error, len, buf) => {
    if (error || this.closed()) return;
    try {
      if (!this.rq.haltedBy) this.startFresh();
      if (!this.desynced) this.take(buf.bytes.slice(0, Math.min(len, buf.size)));
    } finally {
      this.post(buf);
    }
  };

  /** Buffers come back in the order the device used them (the RequestQueue settles in used order). */
  private take(bytes: Uint8Array): void {
    if (this.partial) {
      this.partial.parts.push(bytes);
      if (--this.partial.left === 0) this.complete();
      return;
    }
    // §5.1.6.4: every frame's first buffer starts with the header the device wrote.
    if (bytes.length < NET_HDR_LEN) {
      this.drop(new RequestError('E_DEVICE_SHORT_USED_LEN', `receive queue ${this.rq.vq.index}: the device returned a buffer with ${bytes.length} byte(s), less than the ${NET_HDR_LEN}-byte virtio_net_hdr`,
        'the device broke virtio 1.2 §5.1.6.4; the frame was dropped and counted (NetDriver.malformedFrames); with MRG_RXBUF the device is failed (the buffers after it cannot be told apart): recover()'));
      return;
    }
    // A view, not a copy: `bytes` is this frame's own copy out of DMA memory already.
    const header = bytes.subarray(0, NET_HDR_LEN);
    if (header[NetHdr.GSO_TYPE] === UNWRITTEN_GSO) {
      this.drop(new RequestError('E_DEVICE_BAD_REPLY', `receive queue ${this.rq.vq.index}: the device returned a buffer whose header it never wrote`,
        'the device broke virtio 1.2 §5.1.6.4; the frame was dropped and counted (NetDriver.malformedFrames); with MRG_RXBUF the device is failed (the buffers after it cannot be told apart): recover()'));
      return;
    }
    const hdr = readNetHeader(header);
    const buffers = this.mergeable ? hdr.numBuffers : 1;
    if (buffers < 1 || buffers > this.rq.vq.size) {
      this.drop(new RequestError('E_DEVICE_BAD_REPLY', `receive queue ${this.rq.vq.index}: num_buffers ${buffers} is outside 1..${this.rq.vq.size}`,
        'the device broke virtio 1.2 §5.1.6.4; the frame was dropped and counted (NetDriver.malformedFrames); with MRG_RXBUF the device is failed (the buffers after it cannot be told apart): recover()'));
      return;
    }
    this.partial = { header, hdr, parts: [bytes.subarray(NET_HDR_LEN)], left: buffers - 1 };
    if (this.partial.left === 0) this.complete();
  }

  private drop(e: UvirtioError): void {
    this.malformed++;
    this.lastMalformed = e;
    if (!this.mergeable) return;
    // The buffers after this one (some may be in this same used-ring pass) can be continuations of
    // its frame: none is parsed as a frame until the device is reset and the rings start afresh.
    this.desynced = true;
    this.partial = undefined;
    this.desync(e);
  }

  private complete(): void {
    const { header, hdr, parts } = this.partial!;
    this.partial = undefined;
    const frame = parts.length === 1 ? parts[0]! : concat(parts);
    if (frame.length > 0) this.deliver({ header, hdr, frame, pair: this.pair });
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

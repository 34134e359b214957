// One vhost-user connection, the front-end's side of the UNIX socket (vhost-user.rst
// "Communication"). Nothing here waits on the main thread: a message is written without blocking
// and its answer is a promise, settled when the reply arrives, when the reply timeout passes, or
// when the connection ends — whichever comes first. A signal handler (Ctrl-C) can always run.
//
// Reading goes through Node's own stream machinery: the socket is made and connected with koffi
// (lib/sys/socket.ts, non-blocking) and then handed to `new net.Socket({ fd })`, Node's documented
// way to wrap an existing socket. libuv watches it with epoll on the event-loop thread, so a reply
// or a hang-up is seen at once and no worker thread is held while the socket is idle (the other
// route, a worker-thread poll(2) per wait, costs a thread hop per reply and a libuv worker per
// connection). Node cannot send SCM_RIGHTS on a stream socket, so every message goes out through
// sendmsg(2) on the same fd; the net.Socket is never written to, so the two never interleave. The
// front-end asks for no descriptors: any a back-end sends are dropped by the kernel (read(2)
// takes no ancillary data).
//
// Replies come in the order of the requests that want one (the back-end handles one message at a
// time); back-end-initiated messages would come on a separate channel (SLAVE_REQ, not negotiated),
// so anything else on this socket breaks the protocol. A timeout, a protocol fault or a hang-up
// ends the connection for good (it can no longer be trusted to be in step): every answer still
// awaited is rejected with that error, and the owner hears of it through onFailure.

import net from 'node:net';
import { SysError } from '../../sys/errno.js';
import { MessageBuffer, peerPid, processStopped, shutdownBoth, unreadByPeer } from '../../sys/socket.js';
import type { UvirtioError } from '../../errors.js';
import * as err from './errors.js';
import { Flag, HEADER_SIZE, MAX_PAYLOAD } from './protocol.js';

interface Waiting {
  request: number;
  /** The payload lengths a well-formed answer may have. */
  sizes: readonly number[];
  resolve(payload: Uint8Array): void;
  reject(e: UvirtioError): void;
  timer: NodeJS.Timeout;
}

interface Outgoing {
  request: number;
  bytes: Uint8Array;
  fds: readonly number[];
  /** Bytes of it already sent (its fds went with the first). */
  sent: number;
  since: number;
}

export class Channel {
  private readonly socket: net.Socket;
  private readonly out = new MessageBuffer(HEADER_SIZE + MAX_PAYLOAD);
  /** Messages the socket buffer had no room for yet, in order. */
  private readonly queue: Outgoing[] = [];
  private pumpTimer: NodeJS.Timeout | null = null;
  private inbox: Buffer = Buffer.alloc(0);
  private readonly waiting: Waiting[] = [];
  private failure: UvirtioError | null = null;
  private ended = false;
  /** Whether the back-end ever sent us a byte (a back-end that never did may not be serving us). */
  private heard = false;
  private failureListener: ((e: UvirtioError) => void) | null = null;

  /** Takes over `fd`, a connected AF_UNIX stream socket; closing the channel closes it. */
  constructor(readonly fd: number, readonly address: string, readonly replyTimeoutMs: number) {
    this.socket = new net.Socket({ fd, readable: true, writable: false });
    // An idle connection does not keep the process alive; an awaited answer does (its timer).
    this.socket.unref();
    this.socket.on('data', (chunk: Buffer) => this.received(chunk));
    this.socket.on('end', () => this.fail(err.lost(address, `closed the connection${this.awaiting()}`)));
    this.socket.on('error', (e: NodeJS.ErrnoException) => this.fail(err.lost(address, `broke the connection (${e.code ?? e.message})${this.awaiting()}`)));
    this.socket.on('close', () => this.fail(err.lost(address, `closed the connection${this.awaiting()}`)));
  }

  /** The error that ended the connection, or null while it lives (and after close()). */
  get failed(): UvirtioError | null {
    return this.failure;
  }

  /** Called once if the connection fails (not when close() ends it). */
  onFailure(listener: (e: UvirtioError) => void): void {
    this.failureListener = listener;
  }

  /** Sends a message that has no answer. Throws if the connection is gone. */
  post(request: number, payload?: Uint8Array, fds?: readonly number[]): void {
    this.usable();
    this.write(request, payload, fds, false);
  }

  /**
   * Sends with NEED_REPLY (REPLY_ACK negotiated: vhost-user.rst "REPLY_ACK") and resolves when
   * the back-end answers status 0; any other status rejects with E_VHOST_REFUSED.
   */
  async ack(request: number, payload?: Uint8Array, fds?: readonly number[]): Promise<void> {
    const answer = await this.exchange(request, payload, fds, true, [8]);
    const status = new DataView(answer.buffer, answer.byteOffset, 8).getBigUint64(0, true);
    if (status !== 0n) throw err.refused(this.address, err.reqName(request), `REPLY_ACK status ${status}`);
  }

  /** Sends a request that has an answer and resolves with its payload, whose length must be one of `sizes`. */
  ask(request: number, payload: Uint8Array | undefined, sizes: readonly number[]): Promise<Uint8Array> {
    return this.exchange(request, payload, [], false, sizes);
  }

  private exchange(request: number, payload: Uint8Array | undefined, fds: readonly number[] | undefined, needReply: boolean, sizes: readonly number[]): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.usable();
      // Every answer awaited is bounded by the reply timeout (and by the end of the connection).
      const timer = setTimeout(() => this.timedOut(request), this.replyTimeoutMs);
      this.waiting.push({ request, sizes, resolve, reject, timer });
      this.write(request, payload, fds, needReply);
    });
  }

  private usable(): void {
    if (this.ended) throw err.closed(this.address, 'already');
    if (this.failure) throw this.failure;
  }

  private awaiting(): string {
    const w = this.waiting[0];
    return w ? ` while ${err.reqName(w.request)} waited for its answer` : '';
  }

  // ---- sending ----

  /** "Message Specification": header { u32 request, u32 flags, u32 size } then the payload. */
  private write(request: number, payload: Uint8Array = new Uint8Array(0), fds: readonly number[] = [], needReply: boolean): void {
    const bytes = new Uint8Array(HEADER_SIZE + payload.length);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, request, true);
    v.setUint32(4, Flag.VERSION | (needReply ? Flag.NEED_REPLY : 0), true);
    v.setUint32(8, payload.length, true);
    bytes.set(payload, HEADER_SIZE);
    this.queue.push({ request, bytes, fds: [...fds], sent: 0, since: Date.now() });
    if (!this.pumpTimer) this.pump(0);
  }

  /** Sends what is queued; when the socket buffer is full, tries again shortly (bounded by the reply timeout). */
  private pump(tries: number): void {
    this.pumpTimer = null;
    while (this.queue.length > 0 && !this.failure && !this.ended) {
      const m = this.queue[0]!;
      const rest = m.bytes.subarray(m.sent);
      this.out.data.set(rest, 0);
      let n: number;
      try {
        n = this.out.send(this.fd, 0, rest.length, m.sent === 0 ? m.fds : []);
      } catch (e) {
        const why = e instanceof SysError ? e.errnoName : String(e);
        this.fail(err.lost(this.address, `closed the connection (${err.reqName(m.request)}: ${why})`));
        return;
      }
      if (n < 0) {
        // The back-end reads nothing: a busy or stuck back-end must not hold us beyond the bound.
        if (Date.now() - m.since > this.replyTimeoutMs) {
          this.fail(this.silence(err.reqName(m.request), this.replyTimeoutMs));
          return;
        }
        this.pumpTimer = setTimeout(() => this.pump(tries + 1), Math.min(20, 1 + tries));
        return;
      }
      m.sent += n;
      if (m.sent === m.bytes.length) this.queue.shift();
    }
  }

  // ---- receiving ----

  private received(chunk: Buffer): void {
    if (this.failure || this.ended) return;
    this.heard = true;
    this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
    while (this.inbox.length >= HEADER_SIZE && !this.failure && !this.ended) {
      const request = this.inbox.readUInt32LE(0);
      const flags = this.inbox.readUInt32LE(4);
      const size = this.inbox.readUInt32LE(8);
      const head = this.waiting[0];
      // "Header": version 1 in bits 0–1, and every message to us is a reply (bit 2).
      if ((flags & 0x3) !== Flag.VERSION || (flags & Flag.REPLY) === 0) {
        this.fail(err.protocol(this.address, `the back-end sent a message with flags 0x${flags.toString(16)} (expected version 1 with the reply bit)`));
        return;
      }
      if (!head) {
        this.fail(err.protocol(this.address, `the back-end sent an unsolicited ${err.reqName(request)} (no answer was awaited)`));
        return;
      }
      if (request !== head.request) {
        this.fail(err.protocol(this.address, `sent ${err.reqName(head.request)}, the back-end answered ${err.reqName(request)}`));
        return;
      }
      if (size > MAX_PAYLOAD) {
        this.fail(err.protocol(this.address, `${err.reqName(request)}: the answer claims ${size} bytes of payload (at most ${MAX_PAYLOAD})`));
        return;
      }
      if (this.inbox.length < HEADER_SIZE + size) return; // the rest of the payload is still on its way
      const payload = Uint8Array.prototype.slice.call(this.inbox, HEADER_SIZE, HEADER_SIZE + size);
      this.inbox = this.inbox.subarray(HEADER_SIZE + size);
      if (!head.sizes.includes(size)) {
        this.fail(err.protocol(this.address, `${err.reqName(request)}: the answer has ${size} bytes of payload, expected ${head.sizes.join(' or ')}`));
        return;
      }
      this.waiting.shift();
      clearTimeout(head.timer);
      head.resolve(payload);
    }
  }

  private timedOut(request: number): void {
    this.fail(this.silence(err.reqName(request), this.replyTimeoutMs));
  }

  /**
   * Why the back-end did not answer `what` within `ms`. Its process stopped (SIGSTOP, a debugger:
   * /proc/PID/stat state T or t, the pid from SO_PEERCRED) cannot answer anything: E_VHOST_TIMEOUT
   * saying so. A running back-end that never sent a byte and left our bytes unread (SIOCOUTQ) has
   * not taken the connection up: it serves another front-end (E_VHOST_BUSY).
   */
  private silence(what: string, ms: number): UvirtioError {
    const pid = this.stoppedPeer();
    if (pid !== null) return err.stalled(this.address, what, ms, pid);
    if (!this.heard && unreadByPeer(this.fd) > 0) return err.busy(this.address, what, ms);
    return err.timeout(this.address, what, ms);
  }

  /** The pid of the back-end's process when it is stopped (SIGSTOP, a debugger), else null. */
  stoppedPeer(): number | null {
    if (this.ended) return null;
    const pid = peerPid(this.fd);
    return pid !== null && processStopped(pid) ? pid : null;
  }

  /** An overall bound the owner set ran out (e.g. the whole handshake): fails the connection as a reply timeout would. */
  expire(what: string, ms: number): UvirtioError {
    this.fail(this.silence(what, ms));
    return this.failure ?? err.closed(this.address, `while ${what} waited`);
  }

  /** The owner found the back-end's answers inconsistent: the connection ends with `e`, as on any protocol fault. */
  abort(e: UvirtioError): UvirtioError {
    this.fail(e);
    return e;
  }

  // ---- the end ----

  private fail(e: UvirtioError): void {
    if (this.failure || this.ended) return;
    this.failure = e;
    this.settleAll(e);
    this.release();
    this.failureListener?.(e);
  }

  private settleAll(e: UvirtioError): void {
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  /**
   * Ends the connection at once and never waits: the back-end sees end-of-file now (and drops
   * this session's state); answers still awaited reject with E_CLOSED. Idempotent.
   */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.failure) {
      const w = this.waiting[0];
      this.settleAll(err.closed(this.address, w ? `while ${err.reqName(w.request)} waited for its answer` : 'by the front-end'));
      this.release();
    }
  }

  private release(): void {
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    this.queue.length = 0;
    // shutdown(2) first: the peer sees end-of-file even if the close below is deferred by libuv.
    shutdownBoth(this.fd);
    this.socket.destroy();
    this.out.free();
  }
}

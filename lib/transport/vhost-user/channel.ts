// One vhost-user connection: the front-end's side of the UNIX socket (vhost-user.rst
// "Communication"). Requests are synchronous — VirtioTransport's set-up calls are — and every wait
// for a reply is bounded by poll(2) with a deadline, so a silent or dead back-end is an error,
// never a hang. The front-end never receives unsolicited messages on this socket (back-end
// requests would come on a SLAVE_REQ channel, which is not negotiated).

import { lstatSync } from 'node:fs';
import { Errno, SysError } from '../../sys/errno.js';
import * as libc from '../../sys/libc.js';
import { connectUnix, MessageBuffer, POLL, pollSync, shutdownBoth } from '../../sys/socket.js';
import { DeviceError, TimeoutError, type UvirtioError } from '../../virtio/errors.js';
import { Flag, HEADER_SIZE, MAX_PAYLOAD, REQ_NAMES, type Message } from './protocol.js';

export interface ChannelOptions {
  /** Bound on each reply (default 5000 ms). */
  replyTimeoutMs?: number;
}

function reqName(r: number): string {
  return `VHOST_USER_${REQ_NAMES[r] ?? `request ${r}`}`;
}

/** Connects to a back-end's socket; ENOENT/ECONNREFUSED and non-sockets become typed errors with hints. */
export function connectBackend(path: string, address: string, timeoutMs = 5000): number {
  try {
    return connectUnix(path, timeoutMs);
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    let isSocket: boolean | undefined;
    try {
      isSocket = lstatSync(path).isSocket();
    } catch {
      isSocket = undefined;
    }
    if (e.errno === Errno.ENOENT || (e.errno === Errno.ECONNREFUSED && isSocket !== false)) {
      throw new DeviceError('E_VHOST_UNREACHABLE', `${address}: no vhost-user back-end is listening (${e.errnoName})`,
        `start the back-end first, e.g. qemu-storage-daemon --blockdev driver=file,node-name=f0,filename=IMG --export type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=${path},writable=on`,
        { cause: e });
    }
    if (e.errno === Errno.EAGAIN) {
      throw new TimeoutError('E_VHOST_TIMEOUT', `${address}: the back-end accepted no connection within ${timeoutMs} ms (its backlog is full)`,
        'another front-end may hold the back-end (it serves one at a time), or it is stuck', { cause: e });
    }
    if (isSocket === false || e.errno === Errno.ENOTSOCK || e.errno === Errno.EPROTOTYPE) {
      throw new DeviceError('E_VHOST_NOT_SOCKET', `${address}: ${path} is not a UNIX stream socket (${isSocket === false ? 'not a socket' : e.errnoName})`,
        'vhost-user speaks over a SOCK_STREAM UNIX socket; check the path the back-end listens on', { cause: e });
    }
    throw e;
  }
}

export class Channel {
  private readonly buf = new MessageBuffer(HEADER_SIZE + MAX_PAYLOAD);
  private readonly replyTimeoutMs: number;
  private lostError: UvirtioError | null = null;
  private closed = false;

  constructor(readonly fd: number, readonly address: string, options: ChannelOptions = {}) {
    this.replyTimeoutMs = options.replyTimeoutMs ?? 5000;
  }

  /** The error that ended the connection, or null while it lives. */
  get lost(): UvirtioError | null {
    return this.lostError;
  }

  /** Marks the connection dead (the watcher saw a hang-up, or a send/receive failed). */
  markLost(why: string): UvirtioError {
    this.lostError ??= new DeviceError('E_VHOST_LOST', `${this.address}: the vhost-user back-end ${why}`,
      'the back-end process exited or closed the connection; restart it and reopen the device (requests in flight were not completed)');
    return this.lostError;
  }

  private usable(): void {
    if (this.closed) throw new DeviceError('E_CLOSED', `${this.address}: the vhost-user connection is closed`);
    if (this.lostError) throw this.lostError;
  }

  /** Sends one message; `fds` travel as SCM_RIGHTS with it. NEED_REPLY is the caller's choice. */
  send(request: number, payload: Uint8Array = new Uint8Array(0), fds: readonly number[] = [], needReply = false): void {
    this.usable();
    const d = this.buf.data;
    const v = new DataView(d.buffer, d.byteOffset, HEADER_SIZE);
    v.setUint32(0, request, true);
    v.setUint32(4, Flag.VERSION | (needReply ? Flag.NEED_REPLY : 0), true);
    v.setUint32(8, payload.length, true);
    d.set(payload, HEADER_SIZE);
    const total = HEADER_SIZE + payload.length;
    const deadline = Date.now() + this.replyTimeoutMs;
    let sent = 0;
    while (sent < total) {
      let n: number;
      try {
        n = this.buf.send(this.fd, sent, total - sent, sent === 0 ? fds : []);
      } catch (e) {
        if (e instanceof SysError && e.errno === Errno.EAGAIN) n = 0;
        else if (e instanceof SysError && (e.errno === Errno.EPIPE || e.errno === Errno.ECONNRESET)) throw this.markLost(`closed the connection (${reqName(request)}: ${e.errnoName})`);
        else throw e;
      }
      sent += n;
      if (sent < total) this.waitFor(POLL.OUT, deadline, request);
    }
  }

  /** Sends and waits (bounded) for the reply to this request; checks its header. */
  call(request: number, payload?: Uint8Array, fds?: readonly number[]): Message {
    this.send(request, payload, fds, false);
    return this.receiveReply(request);
  }

  /**
   * Sends with NEED_REPLY (REPLY_ACK negotiated: vhost-user.rst "REPLY_ACK") and checks the u64
   * the back-end answers: 0 is success, anything else a refusal.
   */
  callAck(request: number, payload?: Uint8Array, fds?: readonly number[]): void {
    this.send(request, payload, fds, true);
    const m = this.receiveReply(request);
    if (m.payload.length !== 8) throw this.protocolError(`${reqName(request)}: the REPLY_ACK answer has ${m.payload.length} bytes, not 8`);
    const status = new DataView(m.payload.buffer, m.payload.byteOffset, 8).getBigUint64(0, true);
    if (status !== 0n) {
      throw new DeviceError('E_VHOST_REFUSED', `${this.address}: the back-end refused ${reqName(request)} (status ${status})`,
        'the back-end could not apply this setting; its log (stderr) usually says why');
    }
  }

  private protocolError(message: string): DeviceError {
    const e = new DeviceError('E_VHOST_PROTOCOL', `${this.address}: ${message}`,
      'the back-end does not speak the vhost-user protocol as expected; check that the socket belongs to a vhost-user back-end of this device type');
    // A connection that broke the protocol cannot be trusted to be in step any more.
    this.lostError ??= e;
    return e;
  }

  private receiveReply(request: number): Message {
    const deadline = Date.now() + this.replyTimeoutMs;
    const header = this.readExactly(0, HEADER_SIZE, deadline, request);
    const v = new DataView(header.buffer, header.byteOffset, HEADER_SIZE);
    const got = v.getUint32(0, true);
    const flags = v.getUint32(4, true);
    const size = v.getUint32(8, true);
    if ((flags & 0x3) !== Flag.VERSION || (flags & Flag.REPLY) === 0) {
      throw this.protocolError(`${reqName(request)}: the answer has flags 0x${flags.toString(16)} (expected version 1 with the reply bit)`);
    }
    if (got !== request) throw this.protocolError(`sent ${reqName(request)}, the back-end answered ${reqName(got)}`);
    if (size > MAX_PAYLOAD) throw this.protocolError(`${reqName(request)}: the answer claims ${size} bytes of payload`);
    const payload = size > 0 ? this.readExactly(HEADER_SIZE, size, deadline, request).slice() : new Uint8Array(0);
    return { request: got, flags, payload };
  }

  private readExactly(offset: number, length: number, deadline: number, request: number): Uint8Array {
    let got = 0;
    while (got < length) {
      const fds: number[] = [];
      const n = this.buf.recv(this.fd, offset + got, length - got, fds);
      for (const fd of fds) libc.close(fd); // this front-end asks for no descriptors
      if (n === 0) throw this.markLost(`closed the connection while ${reqName(request)} waited for its answer`);
      if (n > 0) got += n;
      else this.waitFor(POLL.IN, deadline, request);
    }
    return this.buf.data.subarray(offset, offset + length);
  }

  private waitFor(events: number, deadline: number, request: number): void {
    const left = deadline - Date.now();
    if (left <= 0 || pollSync([{ fd: this.fd, events }], left)[0] === 0) {
      if (Date.now() < deadline) return;
      throw new TimeoutError('E_VHOST_TIMEOUT', `${this.address}: no answer to ${reqName(request)} within ${this.replyTimeoutMs} ms`,
        'the back-end is stuck or too busy; check it is alive, or raise the reply timeout (?timeout=MS)');
    }
  }

  /**
   * Ends the connection at once: shutdown(2) makes the back-end see end-of-file (and drop this
   * session's state) now, while the descriptor itself stays open for a poll that may still be
   * out on it. release() closes it afterwards.
   */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    shutdownBoth(this.fd);
  }

  /** Closes the descriptor and frees the message buffer (after end(), once no poll is out on it). */
  release(): void {
    this.end();
    libc.close(this.fd);
    this.buf.free();
  }

  close(): void {
    this.release();
  }
}

// A console port as a Node Duplex stream (virtio 1.2 §5.3.6): what is written goes out on the
// port's transmitq, what the device puts in its receiveq is pushed to the reader.
//
// Back-pressure both ways. Writing: each chunk is cut into transmit buffers taken from a small
// pool; while every buffer is in the ring the write waits, so write() returns false once the
// stream's own buffer passes its high-water mark and 'drain' follows when the device takes bytes.
// Reading: a receive buffer is posted again only when the reader wants more — a paused stream
// stops reposting, and the device keeps its bytes (or stops taking the host's) meanwhile.

import { Duplex } from 'node:stream';
import { DeviceError, type UvirtioError } from '../../lib/errors.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { CompletionCallback } from '../../lib/virtio/request.js';
import { callbackThrew, emitEach } from '../../lib/util/listeners.js';
import { RxBuffers, type TxPool } from '../dma-buffers.js';

/**
 * The receive side of one port number: its receiveq's buffers, posted once when the port is
 * first announced and kept across DEVICE_REMOVE, stop and reinit (drains: false). Bytes go to the
 * port stream of that number now, if any; with none they are counted as orphans. A buffer the
 * queue refuses while halted by a failure is kept idle (drivers/dma-buffers.ts) and posted again by
 * restart() after recover() / reinit(); release() frees them all at close().
 */
export class PortRx {
  /** The stream bytes go to (undefined: port removed or closed by the driver). */
  target: ConsolePort | undefined;
  /** Bytes the device put in this port's receiveq while no stream was there for them. */
  orphanBytes = 0;
  private parked: DmaRegion[] = [];
  private readonly buffers: RxBuffers;

  constructor(rq: RequestQueue<DmaRegion>, dma: DmaAllocator, private readonly closed: () => boolean) {
    // A callback, not a promise (as drivers/net/rx.ts): it runs inside the used-ring pass that found
    // the buffer, the buffers posted again in one pass share one notification (kickNow false), and
    // no reader's code runs in a promise chain whose rejection nobody would handle.
    this.buffers = new RxBuffers(rq, dma, closed, (buf) => rq.submitCb([], [{ addr: buf.iova, len: buf.size }], buf, this.filled, false));
  }

  /** Allocates `count` buffers of `bytes` and posts them. */
  fill(count: number, bytes: number): void {
    for (let i = 0; i < count; i++) this.post(this.buffers.alloc(bytes));
  }

  /** Posts `buf` (kept idle while the queue is halted); when the device fills it, its bytes go to the stream and it is posted again (or held back while the reader is full). */
  private post(buf: DmaRegion): void {
    this.buffers.post(buf);
  }

  /** The device is live again (after recover() / reinit()): buffers kept idle meanwhile are posted again. */
  restart(): void {
    this.buffers.restart();
  }

  /** Frees every buffer (posted, held back or idle): only after the device was reset. */
  release(): void {
    this.parked.length = 0;
    this.buffers.release();
  }

  /**
   * A posted buffer came back. The buffer goes back to the device even when delivering its bytes
   * threw (the stream's listeners are isolated by ConsolePort.emit; anything else is the
   * RequestQueue's E_CALLBACK_THREW warning). An error (a broken or closed queue) surfaces through
   * device health.
   */
  private readonly filled: CompletionCallback<DmaRegion> = (error, len, buf) => {
    if (error || this.closed()) return;
    let again = true;
    try {
      // len was checked against the buffer by the RequestQueue; the bytes are read once, copied out.
      const bytes = buf.bytes.slice(0, Math.min(len, buf.size));
      const t = this.target;
      if (!t) this.orphanBytes += bytes.length;
      again = !t || bytes.length === 0 || t.deliver(bytes);
    } finally {
      if (again) this.post(buf);
      else this.parked.push(buf);
    }
  };

  /** The reader wants more: buffers held back while it was full go back to the device. */
  resume(): void {
    for (const buf of this.parked.splice(0)) this.post(buf);
  }
}


/** A console's size in character cells (virtio 1.2 §5.3.4 cols / rows, §5.3.6.2 RESIZE). */
export interface ConsoleSize {
  /** Columns. */
  cols: number;
  /** Rows. */
  rows: number;
}

/** What a port stream needs from its driver. */
export interface PortIo {
  readonly tx: RequestQueue<DmaRegion>;
  readonly rx: PortRx;
  /** The port number's transmit buffers. */
  readonly txPool: TxPool;
  /** The stream was closed by its user: PORT_OPEN 0 (with MULTIPORT). */
  closed(port: ConsolePort): void;
  /** The driver was closed by its user: requests it rejects end the stream without an 'error'. */
  driverClosed(): boolean;
}

/**
 * One port of a virtio-console (virtio 1.2 §5.3): a Duplex byte stream. `id` is the port number,
 * `name` what PORT_NAME said, `console` whether CONSOLE_PORT marked it, `hostOpen` the host side's
 * last PORT_OPEN (always true without MULTIPORT), `size` the last RESIZE. Emits 'host-open' and
 * 'host-close' when the host side opens or closes, 'resize' with { cols, rows }. A port the device
 * removes ends its readable side and fails later writes with E_CLOSED; destroy() closes it on the
 * driver's side (PORT_OPEN 0). A listener of its events ('data', 'resize' …) or a write callback
 * that throws is a process warning E_CALLBACK_THREW; the port and its other listeners go on.
 */
export class ConsolePort extends Duplex {
  /** The port number (virtio_console_control.id; 0 is port 0 on queues 0 and 1, §5.3.2). */
  readonly id: number;
  /** The name the device gave it with PORT_NAME (undefined until then). */
  name: string | undefined;
  /** The device said it is a console (CONSOLE_PORT). */
  console = false;
  /** The host side is open (the device's last PORT_OPEN; true without MULTIPORT). */
  hostOpen: boolean;
  /** The console size from the last RESIZE (MULTIPORT), columns and rows. */
  size: ConsoleSize | undefined;
  /** Bytes this port received and pushed to its reader. */
  bytesRead = 0;
  /** Bytes the device took from this port's transmitq. */
  bytesWritten = 0;
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private removedBy: UvirtioError | undefined;
  /** After a reinit / recover, until the device adds the port again: writes wait (none reach a port the device may not have). */
  private awaitingDevice = false;

  /**
   * Made by ConsoleDriver when the device adds a port; not for users.
   * @internal
   */
  constructor(id: number, private readonly io: PortIo, hostOpen: boolean) {
    super({ allowHalfOpen: true });
    this.id = id;
    this.hostOpen = hostOpen;
    io.rx.target = this;
  }

  /** @internal Bytes from the receiveq; false when the reader is full (the buffer is then held back). */
  deliver(bytes: Uint8Array): boolean {
    if (this.destroyed || this.removedBy) return true;
    this.bytesRead += bytes.length;
    return this.push(bytes);
  }

  /**
   * @internal The device removed the port (DEVICE_REMOVE), or did not add it again after a reset:
   * no more bytes, writes (and writes held meanwhile) fail with E_CLOSED naming `why`.
   */
  removed(why = 'was removed by the device'): void {
    this.awaitingDevice = false;
    this.removedBy = new DeviceError('E_CLOSED', `console port ${this.id} ${why}`, 'wait for the device to add it again (ConsoleDriver.waitForPort)');
    if (this.io.rx.target === this) this.io.rx.target = undefined;
    this.push(null);
    this.wake();
    this.io.txPool.wake();
  }

  /** @internal After a reset of the device: hold writes until {@link ConsolePort.releaseWrites} or {@link ConsolePort.removed}. */
  holdWrites(): void {
    this.awaitingDevice = true;
  }

  /** @internal The device added the port again (DEVICE_ADD): held writes go on. */
  releaseWrites(): void {
    this.awaitingDevice = false;
    this.io.txPool.wake();
  }

  /** Node's Readable hook (not called by users): the reader wants more, so receive buffers held back are posted again. */
  override _read(): void {
    this.io.rx.resume();
  }

  /** @internal Node's Writable hook: the chunk goes into transmit buffers. */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send(chunk).then(() => this.done(callback), (e: Error) => this.done(callback, e));
  }

  /** @internal Node's Writable hook: end() waits until the device took every byte. */
  override _final(callback: (error?: Error | null) => void): void {
    this.settled().then(() => this.done(callback), (e: Error) => this.done(callback, e));
  }

  /**
   * Node's emit, each listener called in turn (emitEach of lib/util/listeners.ts): the driver emits
   * from inside its own work — a receive completion pushes 'data' (to a pipe's destination too), a
   * control message emits 'resize', 'host-open' or 'host-close', a removal ends the readable side —
   * so a listener that throws must not unwind it (and lose a receive buffer, or from a promise end
   * the process): what it throws is a process warning E_CALLBACK_THREW, and the other listeners
   * still hear the event. 'error' is Node's own (with no listener it throws, as ever).
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') return super.emit(event, ...args);
    return emitEach(this, `console port ${this.id} '${String(event)}'`, event, args);
  }

  /**
   * Completes a write or end() for Node from the driver's promise: Node runs the user's write or
   * end() callback synchronously inside it, and what that throws must not become a rejection nobody
   * handles (the default ends the process); it is a process warning E_CALLBACK_THREW.
   */
  private done(callback: (error?: Error | null) => void, error?: Error): void {
    try {
      callback(error);
    } catch (e) {
      callbackThrew(`a write or end() callback of console port ${this.id}`, e, 'fix the callback; the port went on');
    }
  }

  /** @internal Node's hook: PORT_OPEN 0 unless the device removed the port. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.io.rx.target === this) this.io.rx.target = undefined;
    if (!this.removedBy) this.io.closed(this);
    this.wake();
    this.io.txPool.wake();
    callback(error);
  }

  /** Cuts `chunk` into transmit buffers; resolves when the last is in the ring (not yet taken by the device). */
  private async send(chunk: Uint8Array): Promise<void> {
    const bytes = this.io.txPool.bytes;
    for (let at = 0; at < chunk.length; at += bytes) {
      const buf = await this.buffer();
      const piece = chunk.subarray(at, at + bytes);
      buf.bytes.set(piece);
      this.inFlight++;
      this.io.tx.submit([{ addr: buf.iova, len: piece.length }], [], buf).then(() => {
        this.bytesWritten += piece.length;
      }, (e: Error) => {
        // The device failing is the stream's error; the user's own ConsoleDriver.close() is not
        // (as destroy() without an error): pending write callbacks still get E_CLOSED.
        this.destroy(this.io.driverClosed() ? undefined : e);
      }).finally(() => {
        this.inFlight--;
        this.io.txPool.give(buf);
        this.wake();
      });
    }
  }

  /** A free transmit buffer of the port number's pool, or the next one the device gives back. */
  private async buffer(): Promise<DmaRegion> {
    for (;;) {
      if (this.removedBy) throw this.removedBy;
      if (this.destroyed) throw new DeviceError('E_CLOSED', `console port ${this.id} was closed`, 'write before destroy(), or wait for the device to add the port again');
      const b = this.awaitingDevice ? undefined : this.io.txPool.take();
      if (b) return b;
      await this.io.txPool.wait();
    }
  }

  /** Resolves when the device has taken every byte written (end() waits for it before 'finish'). */
  private async settled(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

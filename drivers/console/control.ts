// The control queues of a multiport console (virtio 1.2 §5.3.6.2): the control receiveq (queue 2)
// keeps device-writable buffers posted for the device's messages, the control transmitq (queue 3)
// carries the driver's. Each message is a virtio_console_control (le32 id, le16 event, le16
// value), PORT_NAME and RESIZE with more bytes after it. What the device writes is untrusted: a
// message shorter than 8 bytes is reported to the handler as an error, never decoded.

import { CONSOLE_MAX_NAME_LEN, ConsoleControlMsg, encodeConsoleControl } from '../../lib/spec/index.js';
import { RequestError, type UvirtioError } from '../../lib/errors.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { CompletionCallback } from '../../lib/virtio/request.js';
import { RxBuffers, TxPool } from '../dma-buffers.js';

/** One control message from the device, decoded (virtio 1.2 §5.3.6.2). */
export interface ControlMessage {
  /** virtio_console_control.id: the port number (not yet checked against max_nr_ports). */
  id: number;
  /** virtio_console_control.event (not yet checked: the device may send any value). */
  event: number;
  /** virtio_console_control.value. */
  value: number;
  /** The bytes after the 8-byte message (PORT_NAME's name, RESIZE's size), copied out of DMA memory. */
  extra: Uint8Array;
}

/** Receive buffers kept posted on the control receiveq. */
const RX_BUFFERS = 16;
/** A control receive buffer: the message and the longest name taken, plus one byte to tell a longer one. */
export const CONTROL_BUFFER_BYTES = ConsoleControlMsg.LEN + CONSOLE_MAX_NAME_LEN + 1;

export class ControlChannel {
  /** Transmit buffers, one per control message in flight (no bound: messages are few). */
  private readonly tx: TxPool;
  /** The control receiveq's buffers: kept idle while the queue is halted by a failure, posted again by restart(). */
  private readonly buffers: RxBuffers;
  /** The last message queued per `${id}:${event}` and not yet taken by the device. */
  private readonly waiting = new Map<string, { value: number; done: Promise<void> }>();

  constructor(
    private readonly cin: RequestQueue<DmaRegion>,
    private readonly cout: RequestQueue<DmaRegion>,
    dma: DmaAllocator,
    private readonly handle: (m: ControlMessage | UvirtioError) => void,
    private readonly closed: () => boolean,
  ) {
    // A callback, not a promise (as drivers/net/rx.ts): the message is handled inside the used-ring
    // pass that found it, the buffers posted again in one pass share one notification, and what
    // handling it runs (a port's 'resize', 'host-open' listeners, onPort) is never inside a promise
    // chain whose rejection nobody handles; a throw that got past the listeners' own isolation is
    // the RequestQueue's E_CALLBACK_THREW warning.
    this.tx = new TxPool(dma, ConsoleControlMsg.LEN, Infinity);
    this.buffers = new RxBuffers(cin, dma, closed, (buf) => cin.submitCb([], [{ addr: buf.iova, len: buf.size }], buf, this.received, false));
  }

  /** Posts the control receiveq's buffers (before DEVICE_READY, so no announcement finds none). */
  start(): void {
    for (let i = 0; i < Math.min(RX_BUFFERS, this.cin.vq.size); i++) {
      this.buffers.post(this.buffers.alloc(CONTROL_BUFFER_BYTES));
    }
  }

  /**
   * Sends one message on the control transmitq; resolves when the device has taken it. The same
   * message as the last one for this port and event, still not taken, is not queued again (its
   * promise is returned): what the device's messages make the driver send (PORT_READY, PORT_OPEN
   * for a DEVICE_ADD or CONSOLE_PORT) stays bounded — a few per port — however many it sends while
   * it takes none, and the last value sent per port and event is still the last one queued.
   */
  send(id: number, event: number, value: number): Promise<void> {
    const key = `${id}:${event}`;
    const last = this.waiting.get(key);
    if (last && last.value === value) return last.done;
    const done = this.transmit(id, event, value).finally(() => {
      if (this.waiting.get(key)?.done === done) this.waiting.delete(key);
    });
    this.waiting.set(key, { value, done });
    return done;
  }

  private async transmit(id: number, event: number, value: number): Promise<void> {
    const buf = this.tx.take()!; // unbounded: always a buffer
    try {
      buf.bytes.set(encodeConsoleControl(id, event, value));
      await this.cout.submit([{ addr: buf.iova, len: ConsoleControlMsg.LEN }], [], buf);
    } finally {
      this.tx.give(buf); // freed at once if close() released the pool meanwhile
    }
  }

  /** The device is live again (after recover() / reinit()): buffers kept idle meanwhile are posted again. */
  restart(): void {
    this.buffers.restart();
  }

  /** A control receive buffer came back: it is posted again before its message is handled. An error (a broken or closed queue) surfaces through device health. */
  private readonly received: CompletionCallback<DmaRegion> = (error, len, buf) => {
    if (error || this.closed()) return;
    // len was checked against the buffer by the RequestQueue; read the device's bytes once.
    const bytes = buf.bytes.slice(0, Math.min(len, buf.size));
    this.buffers.post(buf);
    this.handle(bytes.length < ConsoleControlMsg.LEN
      ? new RequestError('E_DEVICE_SHORT_USED_LEN', `control receiveq: a message of ${bytes.length} byte(s), less than the ${ConsoleControlMsg.LEN}-byte virtio_console_control`,
        'the device broke virtio 1.2 §5.3.6.2; the message was ignored (counted) and the ports go on')
      : decode(bytes));
  };

  /** Frees the buffers: only after the device was reset (nothing can write into them any more). */
  release(): void {
    this.buffers.release();
    this.tx.release();
  }
}

function decode(bytes: Uint8Array): ControlMessage {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    id: v.getUint32(ConsoleControlMsg.ID, true),
    event: v.getUint16(ConsoleControlMsg.EVENT, true),
    value: v.getUint16(ConsoleControlMsg.VALUE, true),
    extra: bytes.subarray(ConsoleControlMsg.LEN),
  };
}

// One port of the reference virtio-console (virtio 1.2 §5.3) as the host sees it: its identity
// (id, name, console or not), whether the host side is open, whether the driver opened it (PORT_OPEN
// from the driver, §5.3.6.2), the bytes waiting for the driver and the bytes the driver wrote. A
// loopback port sends what the driver writes straight back. The host side is outside the device:
// it keeps its bytes across a device reset, as a socket behind QEMU's chardev keeps unread data.

import { Listeners } from '../../util/listeners.js';

/** A port of a reference console, host side (SimConsoleDevice.port(id)). */
export interface SimConsolePort {
  /** The port number (virtio_console_control.id). */
  readonly id: number;
  /** The name PORT_NAME announces, if any. */
  readonly name: string | undefined;
  /** Announced with CONSOLE_PORT (a console rather than a generic port). */
  readonly console: boolean;
  /** Whether the host side is open (the driver is told with PORT_OPEN). */
  readonly hostOpen: boolean;
  /** Whether the driver has the port open (its PORT_OPEN; always true without MULTIPORT). */
  readonly guestOpen: boolean;
  /** Echo what the driver writes back to it. */
  loopback: boolean;
  /** Bytes the driver wrote to this port since the device was made (discarded ones excluded). */
  readonly written: number;
  /** Bytes waiting for the driver's receive buffers. */
  readonly pending: number;
  /** Bytes the driver wrote while the host side was closed: dropped, as QEMU's virtio-serial drops them. */
  readonly discarded: number;
  /**
   * Bytes the device read from the host and dropped: a read it sized while the driver had the port
   * open came after the driver closed it or reset the device (SimConsoleOptions.staleReadMs).
   */
  readonly dropped: number;
  /** Queues bytes for the driver (they go as receive buffers and the driver's open state allow). */
  send(bytes: Uint8Array | string): void;
  /** The bytes the driver wrote and nobody took yet, in order; clears them. */
  take(): Uint8Array;
  /** Calls `listener` with each chunk the driver writes (before take() sees it). Returns an unsubscribe function. */
  onData(listener: (chunk: Uint8Array) => void): () => void;
  /** Opens the host side: PORT_OPEN 1 to the driver. */
  open(): void;
  /** Closes the host side: PORT_OPEN 0 to the driver; what the driver writes meanwhile is discarded. */
  close(): void;
}

/** How a port is made (SimConsoleOptions.ports, SimConsoleDevice.addPort). */
export interface ConsolePortSpec {
  /** Port number, below max_nr_ports (default: the lowest free one). */
  id?: number;
  /** Name for PORT_NAME (default none). */
  name?: string;
  /** Announce it with CONSOLE_PORT (default: port 0 only). */
  console?: boolean;
  /** Host side open from the start (default true). */
  hostOpen?: boolean;
  /** Echo what the driver writes (default: the device's loopback option). */
  loopback?: boolean;
}

/** What a port needs from its device: a wake for its receive queue and a control message to the driver. */
export interface PortHost {
  wake(port: number): void;
  hostOpenChanged(port: number, open: boolean): void;
}

export class ConsolePort implements SimConsolePort {
  guestOpen = false;
  /** The driver sent PORT_READY 1 for it. */
  ready = false;
  written = 0;
  discarded = 0;
  dropped = 0;
  hostOpen: boolean;
  loopback: boolean;
  private backlog: Uint8Array[] = [];
  private backlogHead = 0;
  private got: Uint8Array[] = [];
  private readonly listeners = new Listeners<[Uint8Array]>('console port data');

  constructor(
    readonly id: number,
    readonly name: string | undefined,
    readonly console: boolean,
    hostOpen: boolean,
    loopback: boolean,
    private readonly host: PortHost,
  ) {
    this.hostOpen = hostOpen;
    this.loopback = loopback;
  }

  get pending(): number {
    return this.backlog.reduce((n, b) => n + b.length, 0) - this.backlogHead;
  }

  send(bytes: Uint8Array | string): void {
    const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : Uint8Array.from(bytes);
    if (b.length === 0) return;
    this.backlog.push(b);
    this.host.wake(this.id);
  }

  take(): Uint8Array {
    const out = Buffer.concat(this.got);
    this.got = [];
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }

  onData(listener: (chunk: Uint8Array) => void): () => void {
    return this.listeners.add(listener);
  }

  open(): void {
    this.setHostOpen(true);
  }

  close(): void {
    this.setHostOpen(false);
  }

  private setHostOpen(open: boolean): void {
    if (this.hostOpen === open) return;
    this.hostOpen = open;
    this.host.hostOpenChanged(this.id, open);
  }

  /** What the driver wrote on the port's transmitq (§5.3.6): kept for the host, echoed with loopback; dropped while the host side is closed. */
  fromDriver(bytes: Uint8Array): void {
    if (!this.hostOpen) {
      this.discarded += bytes.length;
      return;
    }
    this.written += bytes.length;
    this.got.push(bytes);
    this.listeners.emit(bytes);
    if (this.loopback) this.send(bytes);
  }

  /** The device read up to `max` of the bytes waiting and dropped them (counted in `dropped`). */
  drop(max: number): void {
    for (let left = max, b = this.next(left); b; left -= b.length, b = left > 0 ? this.next(left) : undefined) this.dropped += b.length;
  }

  /** Up to `max` bytes for one receive buffer, in order (a console is a byte stream: chunks are split and joined freely). */
  next(max: number): Uint8Array | undefined {
    if (this.backlog.length === 0) return undefined;
    const head = this.backlog[0]!;
    const n = Math.min(max, head.length - this.backlogHead);
    const out = head.subarray(this.backlogHead, this.backlogHead + n);
    this.backlogHead += n;
    if (this.backlogHead === head.length) {
      this.backlog.shift();
      this.backlogHead = 0;
    }
    return out;
  }
}

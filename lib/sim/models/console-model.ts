// virtio-console in the reference device (virtio 1.2 §5.3): ports (console-port.ts) with a
// receiveq and a transmitq each; with MULTIPORT the control queues (c_ivq, queue 2, device →
// driver; c_ovq, queue 3, driver → device) announce ports (DEVICE_ADD / DEVICE_REMOVE), their
// names, console role and host-side open state, and carry the driver's DEVICE_READY, PORT_READY
// and PORT_OPEN (§5.3.6.2). Bytes for a port wait until the driver has opened it (QEMU's
// virtio-serial does the same); what the driver writes while the host side is closed is dropped
// and counted. EMERG_WRITE: a write to emerg_wr is one character for port 0 (§5.3.4).
//
// A reset (and so a reinit) forgets the driver's side — readiness, open ports, control messages
// not yet delivered — and keeps the host's: ports, names, host open state and unread bytes.

import {
  ConsoleConfig, ConsoleControlMsg, ConsoleEvent, ConsoleFeature, ConsoleQueue, ConsoleResize, DeviceType, bit, consoleQueueCount, consoleReceiveq,
  encodeConsoleControl, hasFeature,
} from '../../spec/index.js';
import { shown } from '../../util/shown.js';
import { gather, scatter } from '../virtio/ring/chain-io.js';
import { DeviceConfigSpace, type ConfigField } from '../virtio/device-config.js';
import type { DeviceModel, Filled, ModelHost, ReceiveBuffers } from '../virtio/model.js';
import { badChain, dataView, type Chain } from '../virtio/ring/chain.js';
import { ConsolePort, type ConsolePortSpec } from './console-port.js';

// struct virtio_console_config (virtio 1.2 §5.3.4), each field with the feature that makes it exist.
const CONFIG_FIELDS: readonly ConfigField[] = [
  { offset: ConsoleConfig.COLS, size: 2, feature: ConsoleFeature.SIZE },
  { offset: ConsoleConfig.ROWS, size: 2, feature: ConsoleFeature.SIZE },
  { offset: ConsoleConfig.MAX_NR_PORTS, size: 4, feature: ConsoleFeature.MULTIPORT },
  { offset: ConsoleConfig.EMERG_WR, size: 4, feature: ConsoleFeature.EMERG_WRITE },
];

export interface ConsoleModelOptions {
  /** Offer MULTIPORT (control queues, several ports). */
  multiport: boolean;
  /** max_nr_ports (1 without MULTIPORT). */
  maxNrPorts: number;
  /** The ports there from the start (without MULTIPORT: port 0 only). */
  ports: readonly ConsolePortSpec[];
  /** Offer EMERG_WRITE. */
  emergWrite: boolean;
  /** Default loopback of a port. */
  loopback: boolean;
  cols: number;
  rows: number;
  /** How long the device's sizing of its next read of the host's bytes holds, ms (SimConsoleOptions.staleReadMs; 0: off). */
  staleReadMs?: number;
}

type Role = { kind: 'rx' | 'tx'; port: number } | { kind: 'c_ivq' | 'c_ovq' | 'none' };

export class ConsoleModel implements DeviceModel {
  readonly deviceType = DeviceType.CONSOLE;
  readonly queueCount: number;
  readonly features: bigint;
  readonly config = new DeviceConfigSpace(ConsoleConfig.LEN, CONFIG_FIELDS);
  readonly maxNrPorts: number;
  readonly ports = new Map<number, ConsolePort>();
  /** Characters the driver wrote to emerg_wr. */
  readonly emergency: number[] = [];
  /** Control messages from the driver the device could not use (unknown event, no such port). */
  badControl = 0;
  /** Control messages to the driver dropped because its buffer was smaller than the message. */
  truncatedControl = 0;
  /** The driver sent DEVICE_READY 1 since the last reset. */
  driverReady = false;
  private control: Uint8Array[] = [];
  private negotiated = 0n;
  private host: ModelHost | undefined;
  private readonly defaultLoopback: boolean;
  private readonly staleReadMs: number;
  /** By port: the receive space the device saw free at the end of its last pass, and when (staleReadMs). */
  private readonly sized = new Map<number, { bytes: number; at: number }>();
  /** By port: a read sized while the driver had the port open, still to happen after it closed it or reset the device. */
  private readonly staleRead = new Map<number, { bytes: number; until: number }>();

  constructor(options: ConsoleModelOptions) {
    this.maxNrPorts = options.multiport ? options.maxNrPorts : 1;
    this.queueCount = consoleQueueCount(options.multiport, this.maxNrPorts);
    this.features = bit(ConsoleFeature.SIZE) | (options.multiport ? bit(ConsoleFeature.MULTIPORT) : 0n)
      | (options.emergWrite ? bit(ConsoleFeature.EMERG_WRITE) : 0n);
    this.config.setU16(ConsoleConfig.COLS, options.cols);
    this.config.setU16(ConsoleConfig.ROWS, options.rows);
    this.config.setU32(ConsoleConfig.MAX_NR_PORTS, this.maxNrPorts);
    this.defaultLoopback = options.loopback;
    this.staleReadMs = options.staleReadMs ?? 0;
    for (const spec of options.ports) this.addPort(spec);
  }

  private get multiport(): boolean {
    return hasFeature(this.negotiated, ConsoleFeature.MULTIPORT);
  }

  /** Adds a port (host side); announced with DEVICE_ADD once the driver is ready (§5.3.6.2). */
  addPort(spec: ConsolePortSpec): ConsolePort {
    const id = spec.id ?? [...Array(this.maxNrPorts).keys()].find((i) => !this.ports.has(i));
    if (id === undefined || !Number.isInteger(id) || id < 0 || id >= this.maxNrPorts || this.ports.has(id)) {
      throw new RangeError(`port ${shown(id)} is taken or outside 0..${this.maxNrPorts - 1} (max_nr_ports ${this.maxNrPorts})`);
    }
    const port = new ConsolePort(id, spec.name, spec.console ?? id === 0, spec.hostOpen ?? true, spec.loopback ?? this.defaultLoopback, {
      wake: (p) => {
        this.readStale(p);
        this.host?.wake(consoleReceiveq(p));
      },
      hostOpenChanged: (p, open) => {
        if (this.ports.get(p)?.ready) this.toDriver(p, ConsoleEvent.PORT_OPEN, open ? 1 : 0);
      },
    });
    this.ports.set(id, port);
    if (this.driverReady) this.toDriver(id, ConsoleEvent.DEVICE_ADD, 0);
    return port;
  }

  /** Removes a port (host side): DEVICE_REMOVE to a ready driver. */
  removePort(id: number): boolean {
    if (!this.ports.delete(id)) return false;
    if (this.driverReady) this.toDriver(id, ConsoleEvent.DEVICE_REMOVE, 0);
    return true;
  }

  /** New console size: the configuration (a config change) and, with MULTIPORT, RESIZE to every console port (§5.3.6.2). */
  resize(cols: number, rows: number): void {
    this.config.setU16(ConsoleConfig.COLS, cols);
    this.config.setU16(ConsoleConfig.ROWS, rows);
    this.host?.configChanged();
    if (!this.driverReady) return;
    const size = new Uint8Array(ConsoleResize.LEN);
    dataView(size).setUint16(ConsoleResize.COLS, cols, true);
    dataView(size).setUint16(ConsoleResize.ROWS, rows, true);
    for (const p of this.ports.values()) if (p.console && p.ready) this.toDriver(p.id, ConsoleEvent.RESIZE, 0, size);
  }

  /** Puts raw bytes on the control receiveq as if they were a control message (tests of a hostile device). */
  injectControl(message: Uint8Array): void {
    this.control.push(Uint8Array.from(message));
    this.host?.wake(ConsoleQueue.CONTROL_RECEIVEQ);
  }

  attach(host: ModelHost): void {
    this.host = host;
  }

  featuresAccepted(features: bigint): void {
    this.negotiated = features;
    // Without MULTIPORT port 0 is the only port and always open (§5.3.6).
    if (!this.multiport) for (const p of this.ports.values()) p.guestOpen = p.id === 0;
  }

  fetchesRequests(q: number): boolean {
    const kind = this.role(q).kind;
    return kind === 'tx' || kind === 'c_ovq';
  }

  serve(q: number, chain: Chain): number {
    const host = this.requireHost();
    const role = this.role(q);
    if (chain.writableLen > 0 || (role.kind === 'c_ovq' && chain.readableLen < ConsoleControlMsg.LEN) || (role.kind !== 'c_ovq' && role.kind !== 'tx')) {
      throw badChain(q, 'console-tx-malformed', `chain ${chain.id} on queue ${q}: ${chain.readableLen} readable, ${chain.writableLen} writable bytes`);
    }
    const bytes = gather(host.mem, chain.readable, 0, chain.readableLen);
    if (role.kind === 'tx') this.ports.get(role.port)?.fromDriver(bytes);
    else this.fromDriver(bytes);
    return 0;
  }

  receive(q: number, buffers: ReceiveBuffers): Filled[] {
    const role = this.role(q);
    const mem = this.requireHost().mem;
    const filled: Filled[] = [];
    if (role.kind === 'c_ivq') {
      while (this.control.length > 0) {
        const chain = buffers.take();
        if (!chain) break;
        const msg = this.control.shift()!;
        if (msg.length > chain.writableLen) this.truncatedControl++;
        const part = msg.subarray(0, chain.writableLen);
        scatter(mem, chain.writable, 0, part);
        filled.push({ chain, written: part.length });
      }
      return filled;
    }
    if (role.kind !== 'rx') return filled;
    const port = this.ports.get(role.port);
    if (!port?.guestOpen) return filled;
    for (let chain = buffers.take(); chain; chain = buffers.take()) {
      const bytes = port.next(chain.writableLen);
      if (!bytes) {
        buffers.putBack(1);
        break;
      }
      scatter(mem, chain.writable, 0, bytes);
      filled.push({ chain, written: bytes.length });
    }
    this.noteFreeSpace(role.port, buffers);
    return filled;
  }

  /** §5.3.4: a write to emerg_wr (EMERG_WRITE offered) is one character for port 0; other fields are read-only. */
  writeConfig(offset: number, _width: 1 | 2 | 4, value: number, offered: bigint): void {
    if (offset === ConsoleConfig.EMERG_WR && hasFeature(offered, ConsoleFeature.EMERG_WRITE)) this.emergency.push(value & 0xff);
  }

  reset(): void {
    this.control = [];
    this.driverReady = false;
    this.negotiated = 0n;
    for (const p of this.ports.values()) {
      if (p.guestOpen) this.closedUnderRead(p.id);
      p.ready = false;
      p.guestOpen = false;
    }
    this.sized.clear();
  }

  /**
   * staleReadMs: the driver closed port `id` (PORT_OPEN 0) or reset the device. A read the device
   * sized before (receive space was free at its last pass, not long ago) still happens, the next
   * time the host has bytes, and what it reads is dropped (readStale).
   */
  private closedUnderRead(id: number): void {
    const seen = this.sized.get(id);
    this.sized.delete(id);
    if (!seen || Date.now() - seen.at >= this.staleReadMs) return;
    this.staleRead.set(id, { bytes: seen.bytes, until: seen.at + this.staleReadMs });
    this.readStale(id);
  }

  /** The read closedUnderRead() left pending happens if the host has bytes and it has not expired: they are dropped. */
  private readStale(id: number): void {
    const read = this.staleRead.get(id);
    const port = this.ports.get(id);
    if (!read || !port) return;
    if (Date.now() >= read.until) {
      this.staleRead.delete(id);
      return;
    }
    if (port.pending === 0) return;
    this.staleRead.delete(id);
    port.drop(read.bytes);
  }

  /**
   * staleReadMs: the receive space free once this pass is over (up to 4096 bytes, as QEMU's
   * virtio_serial_guest_ready counts it): the size of the device's next read of the host's bytes.
   */
  private noteFreeSpace(id: number, buffers: ReceiveBuffers): void {
    if (this.staleReadMs <= 0) return;
    let bytes = 0;
    let taken = 0;
    for (let chain = bytes < 4096 ? buffers.take() : undefined; chain; chain = bytes < 4096 ? buffers.take() : undefined) {
      bytes += chain.writableLen;
      taken++;
    }
    if (taken > 0) buffers.putBack(taken);
    if (bytes > 0) this.sized.set(id, { bytes: Math.min(bytes, 4096), at: Date.now() });
    else this.sized.delete(id);
  }

  /** A control message from the driver (§5.3.6.2): DEVICE_READY, PORT_READY, PORT_OPEN. */
  private fromDriver(msg: Uint8Array): void {
    const v = dataView(msg);
    const id = v.getUint32(ConsoleControlMsg.ID, true);
    const event = v.getUint16(ConsoleControlMsg.EVENT, true);
    const value = v.getUint16(ConsoleControlMsg.VALUE, true);
    if (event === ConsoleEvent.DEVICE_READY) {
      this.driverReady = value === 1;
      if (this.driverReady) for (const p of [...this.ports.keys()].sort((a, b) => a - b)) this.toDriver(p, ConsoleEvent.DEVICE_ADD, 0);
      return;
    }
    const port = this.ports.get(id);
    if (!port || (event !== ConsoleEvent.PORT_READY && event !== ConsoleEvent.PORT_OPEN)) {
      this.badControl++;
      return;
    }
    if (event === ConsoleEvent.PORT_OPEN) {
      if (value === 0 && port.guestOpen) this.closedUnderRead(id);
      if (value === 1) this.staleRead.delete(id);
      port.guestOpen = value === 1;
      this.host?.wake(consoleReceiveq(id));
      return;
    }
    port.ready = value === 1;
    if (!port.ready) return;
    if (port.console) this.toDriver(id, ConsoleEvent.CONSOLE_PORT, 1);
    if (port.name !== undefined) this.toDriver(id, ConsoleEvent.PORT_NAME, 1, new TextEncoder().encode(port.name));
    if (port.hostOpen) this.toDriver(id, ConsoleEvent.PORT_OPEN, 1);
  }

  private toDriver(id: number, event: number, value: number, extra?: Uint8Array): void {
    if (!this.multiport) return;
    this.control.push(encodeConsoleControl(id, event, value, extra));
    this.host?.wake(ConsoleQueue.CONTROL_RECEIVEQ);
  }

  /** §5.3.2: receiveq0, transmitq0, then with MULTIPORT c_ivq, c_ovq, and two queues per port from port 1. */
  private role(q: number): Role {
    if (q < 2) return { kind: q === 0 ? 'rx' : 'tx', port: 0 };
    if (!this.multiport || q >= this.queueCount) return { kind: 'none' };
    if (q === ConsoleQueue.CONTROL_RECEIVEQ) return { kind: 'c_ivq' };
    if (q === ConsoleQueue.CONTROL_TRANSMITQ) return { kind: 'c_ovq' };
    return { kind: q % 2 === 0 ? 'rx' : 'tx', port: (q - 2) >> 1 };
  }

  private requireHost(): ModelHost {
    if (!this.host) throw new Error('ConsoleModel used before attach()');
    return this.host;
  }
}

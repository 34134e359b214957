// virtio-console driver (virtio 1.2 §5.3) on VirtioDevice. Without MULTIPORT: port 0 on queues 0
// and 1. With MULTIPORT: the control queues (2, 3) — DEVICE_READY, then for each DEVICE_ADD a
// PORT_READY and PORT_OPEN, and PORT_NAME, CONSOLE_PORT, RESIZE and the host's PORT_OPEN taken as
// they come (§5.3.6.2) — and a receiveq / transmitq per port (§5.3.2). Ports are Duplex streams
// (port.ts). EMERG_WRITE when offered (§5.3.4). Stop / snapshot / reinit through StatefulDriver:
// receive buffers survive (drains: false); after a reinit or recover the device starts from reset,
// so the driver says DEVICE_READY again and takes the device's new DEVICE_ADDs for the ports it knows.

import {
  CONSOLE_BAD_ID, ConsoleConfig, ConsoleEvent, ConsoleFeature, ConsoleQueue, ConsoleResize, DeviceType, consoleReceiveq, consoleTransmitq,
} from '../../lib/spec/index.js';
import { DeviceError, RequestError, TimeoutError, UsageError, type UvirtioError } from '../../lib/errors.js';
import { DRIVER_OPEN_OPTION_KEYS, VirtioDevice, checkDriverOpenOptions, type OpenOptions, type ReinitOptions, type StopOptions, type VirtioTransport, checkTransportArgument } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { DeviceSnapshot, Mechanism } from '../../lib/virtio/snapshot/index.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { StatefulDriver } from '../stateful.js';
import { ControlChannel, type ControlMessage } from './control.js';
import { handleControl } from './events.js';
import { ConsolePort, PortRx, type ConsoleSize } from './port.js';
import { TxPool } from '../dma-buffers.js';
import { Listeners } from '../../lib/util/listeners.js';
import { shown } from '../../lib/util/shown.js';
import { plainBytes } from '../../lib/util/plain-bytes.js';
import { checkValue, int, type OptionKeys } from '../../lib/util/options.js';

export { ConsolePort, type ConsoleSize } from './port.js';

/** How {@link ConsoleDriver.open} sets up a virtio-console: the device-level options of OpenOptions, ring layout and buffering. */
export interface ConsoleOpenOptions extends Omit<OpenOptions, 'features'> {
  /** Ring layout: 'packed' requires VIRTIO_F_RING_PACKED, 'split' refuses it, 'auto' (default) takes packed when offered. */
  layout?: Layout | 'auto';
  /** Ring size of every queue (default: the device's maximum, at most 64). */
  queueSize?: number;
  /** Receive buffers kept posted per port (default 8). */
  rxBuffers?: number;
  /** Bytes per receive and transmit buffer (default 4096). */
  bufferBytes?: number;
  /**
   * Accept MULTIPORT when offered and the transport has its control queues (default true); false
   * uses port 0 only. Ports: max_nr_ports, at most as many as the transport has queues for.
   */
  multiport?: boolean;
  /**
   * How long, in ms, stop() waits with no receive buffer coming back before it takes the host to be
   * idle (default {@link CONSOLE_RECEIVE_QUIET_MS}; 1 to 60 000). Raise it for a device that may
   * still act on a read it sized this long ago (see ConsoleDriver.stop).
   */
  receiveQuietMs?: number;
}
/** ConsoleOpenOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const CONSOLE_OPEN_OPTION_KEYS: OptionKeys<ConsoleOpenOptions> = {
  ...DRIVER_OPEN_OPTION_KEYS, layout: true, queueSize: true, rxBuffers: true, bufferBytes: true, multiport: true, receiveQuietMs: true,
};

/**
 * The longest {@link ConsoleDriver.waitForPort} waits by default, and the longest a known port's
 * writes wait after a reinit / recover for the device to add the port again (then E_CLOSED), ms.
 */
export const CONSOLE_PORT_WAIT_MS = 5000;

/**
 * How long {@link ConsoleDriver.stop} waits, in ms, for the host's bytes to fill the receive
 * buffers still posted before it closes the ports: when none came back for this long, the host is
 * taken to be idle (see stop()).
 */
export const CONSOLE_RECEIVE_QUIET_MS = 50;

/**
 * A virtio-console driver (virtio 1.2 §5.3): its ports as Duplex streams ({@link ConsolePort}),
 * discovered through the control queues with MULTIPORT (§5.3.6.2), port 0 alone without. Every
 * control message from the device is checked; one that cannot be used (a port id beyond
 * max_nr_ports, an unknown event, a name too long, a second DEVICE_ADD, a message too short) is
 * ignored and counted in {@link ConsoleDriver.badControl}, never thrown.
 */
export class ConsoleDriver extends StatefulDriver {
  /** MULTIPORT was negotiated. */
  readonly multiport: boolean;
  /** max_nr_ports (1 without MULTIPORT): port numbers are below it. */
  readonly maxPorts: number;
  /** Control messages from the device ignored because they could not be used. */
  badControl = 0;
  /** The last of those, as an error with its code (E_DEVICE_BAD_REPLY, E_DEVICE_SHORT_USED_LEN). */
  lastBadControl: UvirtioError | null = null;
  private readonly live = new Map<number, ConsolePort>();
  private readonly rx = new Map<number, PortRx>();
  /** Transmit buffers by port number, kept for the streams that number has. */
  private readonly txPools = new Map<number, TxPool>();
  /** Ports known before a reinit / recover whose DEVICE_ADD the device sends again. */
  private readonly resyncing = new Set<number>();
  /** Ends the wait for those DEVICE_ADDs ({@link CONSOLE_PORT_WAIT_MS}). */
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly portListeners = new Listeners<[ConsolePort]>('console port');
  private readonly control: ControlChannel | undefined;
  private closed = false;

  private constructor(device: VirtioDevice, queues: QueueSet, maxPorts: number, private readonly options: Required<Pick<ConsoleOpenOptions, 'rxBuffers' | 'bufferBytes' | 'receiveQuietMs'>>) {
    super(device, queues);
    this.multiport = device.has(ConsoleFeature.MULTIPORT);
    this.maxPorts = maxPorts;
    if (this.multiport) {
      this.control = new ControlChannel(queues.get(ConsoleQueue.CONTROL_RECEIVEQ) as RequestQueue<DmaRegion>,
        queues.get(ConsoleQueue.CONTROL_TRANSMITQ) as RequestQueue<DmaRegion>, device.dma, (m) => this.fromDevice(m), () => this.closed);
    }
  }

  /**
   * Initialises the console behind `transport` (virtio 1.2 §3.1.1, §5.3.5): features SIZE,
   * MULTIPORT (unless options.multiport is false) and EMERG_WRITE when offered, every queue of
   * max_nr_ports ports, receive buffers, DRIVER_OK, then port 0 (without MULTIPORT) or
   * DEVICE_READY (with it: ports arrive as the device announces them; {@link waitForPort}).
   * Rejects with DeviceError E_NOT_VIRTIO when it is not a console (type 3), UsageError
   * E_INVALID_ARGUMENT for bad options, E_DEVICE_BAD_REPLY for a max_nr_ports of 0 or above 0x7fff,
   * and the errors of VirtioDevice.open; the device is closed again on failure.
   */
  static async open(transport: VirtioTransport, options: ConsoleOpenOptions = {}): Promise<ConsoleDriver> {
    checkTransportArgument(transport, 'ConsoleDriver.open');
    // Every option is checked before the device is touched: a refusal leaves the transport as it was.
    const checked = checkDriverOpenOptions(options, 'ConsoleDriver.open', CONSOLE_OPEN_OPTION_KEYS, ['multiport']);
    options = checked.options;
    if (transport.deviceType !== DeviceType.CONSOLE) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not console (${DeviceType.CONSOLE})`,
        'open it with the driver for its type (BlkDriver, NetDriver, …), or give the address of a virtio-console device');
    }
    const rxBuffers = options.rxBuffers ?? 8;
    const bufferBytes = options.bufferBytes ?? 4096;
    for (const [k, v, max] of [['rxBuffers', rxBuffers, 4096], ['bufferBytes', bufferBytes, 1 << 20]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > max) throw new UsageError('E_INVALID_ARGUMENT', `${k} must be an integer from 1 to ${max}, got ${shown(v)}`);
    }
    const receiveQuietMs = checkValue(int(1, 60_000), options.receiveQuietMs ?? CONSOLE_RECEIVE_QUIET_MS, 'receiveQuietMs');
    const optional: number[] = [ConsoleFeature.SIZE, ConsoleFeature.EMERG_WRITE];
    // MULTIPORT's control queues are queues 2 and 3 (§5.3.2): a transport without them cannot have it.
    if ((options.multiport ?? true) && transport.numQueues >= 4) optional.push(ConsoleFeature.MULTIPORT);
    const device = await VirtioDevice.open(transport, { ...checked.open, features: { optional, layout: options.layout ?? 'auto' } });
    let driver: ConsoleDriver | undefined;
    try {
      const multiport = device.has(ConsoleFeature.MULTIPORT);
      const maxNrPorts = multiport ? device.config.read32(ConsoleConfig.MAX_NR_PORTS) : 1;
      // §5.3.2: 2 + 2·max_nr_ports queues; a device announcing more than a 16-bit queue index can reach is lying.
      if (maxNrPorts < 1 || maxNrPorts > 0x7fff) throw new RequestError('E_DEVICE_BAD_REPLY', `${transport.address}: max_nr_ports is ${maxNrPorts}`, 'the device is misconfigured');
      // No more ports than the transport has queues for (port p > 0: queues 2p + 2 and 2p + 3); a
      // port the device announces beyond them is refused as beyond max_nr_ports.
      const maxPorts = multiport ? Math.max(1, Math.min(maxNrPorts, Math.floor((transport.numQueues - 2) / 2))) : 1;
      const queues = new QueueSet(device);
      const sizeOf = (q: number): number => options.queueSize ?? Math.min(transport.queueMaxSize(q), 64);
      for (let p = 0; p < maxPorts; p++) {
        queues.add(consoleReceiveq(p), { size: sizeOf(consoleReceiveq(p)), drains: false });
        queues.add(consoleTransmitq(p), { size: sizeOf(consoleTransmitq(p)) });
        if (p === 0 && multiport) {
          queues.add(ConsoleQueue.CONTROL_RECEIVEQ, { size: sizeOf(ConsoleQueue.CONTROL_RECEIVEQ), drains: false });
          queues.add(ConsoleQueue.CONTROL_TRANSMITQ, { size: sizeOf(ConsoleQueue.CONTROL_TRANSMITQ) });
        }
      }
      await device.driverOk();
      driver = new ConsoleDriver(device, queues, maxPorts, { rxBuffers, bufferBytes, receiveQuietMs });
      if (driver.control) {
        driver.control.start();
        await driver.control.send(CONSOLE_BAD_ID, ConsoleEvent.DEVICE_READY, 1);
      } else {
        driver.addPort(0, true);
      }
      return driver;
    } catch (e) {
      // Reset and released, the caller's transport left open and unowned (as VirtioDevice.open's
      // own refusals leave it): a corrected open on it works.
      await device.close({ keepTransport: true });
      // The device was reset: the buffers this open allocated (control, port 0's receive buffers) are freed.
      if (driver) {
        driver.closed = true;
        driver.release();
      }
      throw e;
    }
  }

  /** The ports there now (added by the device, not removed, not destroyed), by number. */
  get ports(): ReadonlyMap<number, ConsolePort> {
    return this.live;
  }

  /** Bytes the device put in receive queues of ports that had no stream (removed or closed). */
  get orphanBytes(): number {
    return [...this.rx.values()].reduce((n, r) => n + r.orphanBytes, 0);
  }

  /** The console size from the configuration (VIRTIO_CONSOLE_F_SIZE, §5.3.4), or undefined without it. */
  get size(): ConsoleSize | undefined {
    if (!this.device.has(ConsoleFeature.SIZE)) return undefined;
    return { cols: this.device.config.read16(ConsoleConfig.COLS), rows: this.device.config.read16(ConsoleConfig.ROWS) };
  }

  /** Calls `listener` for each port the device adds (after its PORT_READY), and without MULTIPORT for a new port 0 after reinit / recover. Returns a function that unsubscribes. */
  onPort(listener: (p: ConsolePort) => void): () => void {
    return this.portListeners.add(listener);
  }

  /**
   * The port with number `which` (or the name PORT_NAME gave it), once the device has added it (and
   * named it). Rejects with TimeoutError E_REQUEST_TIMEOUT after `timeoutMs` (default
   * {@link CONSOLE_PORT_WAIT_MS}), E_CLOSED when the driver is closed meanwhile; throws UsageError
   * E_INVALID_ARGUMENT for a port number that is not an integer below max_nr_ports.
   */
  async waitForPort(which: number | string, timeoutMs = CONSOLE_PORT_WAIT_MS): Promise<ConsolePort> {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('E_INVALID_ARGUMENT', `timeoutMs must be a positive number, got ${shown(timeoutMs)}`);
    // A port number no port can have (§5.3.6.2: ids are below max_nr_ports) would only time out.
    if (typeof which === 'number' ? !Number.isInteger(which) || which < 0 || which >= this.maxPorts : typeof which !== 'string') {
      throw new UsageError('E_INVALID_ARGUMENT', `${this.device.address}: no console port can be ${typeof which === 'string' ? JSON.stringify(which) : shown(which)}`,
        `give a port number from 0 to ${this.maxPorts - 1} (max_nr_ports ${this.maxPorts}) or a PORT_NAME name`);
    }
    const match = (p: ConsolePort): boolean => (typeof which === 'number' ? p.id === which : p.name === which);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) throw new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`);
      const found = [...this.live.values()].find(match);
      if (found) return found;
      if (Date.now() >= deadline) {
        throw new TimeoutError('E_REQUEST_TIMEOUT', `${this.device.address}: no console port ${JSON.stringify(which)} within ${timeoutMs} ms`,
          `ports there: ${[...this.live.values()].map((p) => `${p.id}${p.name ? ` (${p.name})` : ''}`).join(', ') || 'none'}`);
      }
      await new Promise((r) => setTimeout(r, Math.min(5, deadline - Date.now())));
    }
  }

  /**
   * Writes `bytes` through emerg_wr, one character per 32-bit write (virtio 1.2 §5.3.4): output that
   * needs no queue. Throws DeviceError E_FEATURE_MISSING when EMERG_WRITE was not negotiated, UsageError
   * E_INVALID_ARGUMENT for anything but a string or a Uint8Array.
   */
  emergencyWrite(bytes: Uint8Array | string): void {
    if (!this.device.has(ConsoleFeature.EMERG_WRITE)) {
      throw new DeviceError('E_FEATURE_MISSING', `${this.device.address} does not offer VIRTIO_CONSOLE_F_EMERG_WRITE`, 'write to port 0 instead');
    }
    // The array's own memory, not its own iterator or length (which could run for ever).
    const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : plainBytes(bytes);
    if (!b) throw new UsageError('E_INVALID_ARGUMENT', `emergencyWrite takes a string or a Uint8Array, got ${shown(bytes)}`);
    // By index over the length taken now: no iterator (the array's own or a replaced one) decides what goes.
    for (let i = 0, n = b.length; i < n; i++) this.device.config.write32(ConsoleConfig.EMERG_WR, b[i]!);
  }

  /**
   * Stops the console so that none of the host's bytes is lost across the stop, in three steps:
   *
   * 1. **Receive drain.** The port receive queues stop taking buffers back (what comes back is
   *    delivered and waits to be posted again), and the stop waits until the device has used
   *    every buffer still posted on a port the host has open — or until none came back for
   *    `receiveQuietMs` (ConsoleOpenOptions, default {@link CONSOLE_RECEIVE_QUIET_MS}: the host is
   *    not sending): at most rxBuffers × receiveQuietMs against a host trickling just fast
   *    enough, and never more than half the stop's `timeoutMs`. A device with no receive buffer
   *    has nowhere to put bytes: QEMU's virtio-serial then stops reading its chardev, and the
   *    host's bytes wait there.
   * 2. **PORT_OPEN 0** for every port (§5.3.6.2), with MULTIPORT, waiting until the device took
   *    the messages, at most until a quarter of `timeoutMs` is left (else E_STOP_TIMEOUT, the
   *    device not asked to stop, the ports opened again). A device that honours it stops
   *    putting bytes into receive buffers.
   * 3. The device's stop (QueueSet.stop; quiesce: the transmit queues drain).
   *
   * Steps 1 and 2 are the stop's StopPreparation: they run inside the device's one-operation
   * lock, only for a stop the device accepted.
   *
   * Why step 1: a device may drop bytes it already took from the host when the driver closes the
   * port or resets the device. QEMU 7.2's virtserialport does: its main loop sizes a chardev read
   * from the receive buffers free when it last went to sleep, and when the port was closed (or
   * the device reset) in between, the bytes it reads are dropped (`virtio_serial_write` returns 0
   * for a port the guest closed). With no buffer posted that read size is 0 before the driver
   * acts, so nothing is in flight to drop. An idle host leaves buffers posted: the stop then takes
   * receiveQuietMs longer and step 2 proceeds with them. What remains: bytes the host starts
   * sending in the moment after step 2, before QEMU's main loop next wakes (a few ms while a
   * guest runs), can still meet the race; a device whose read sizes stay stale longer than
   * receiveQuietMs can lose the next bytes an idle host sends (raise receiveQuietMs).
   *
   * The whole stop ends within `timeoutMs` (default 5000; E_STOP_TIMEOUT when the device has not
   * taken the messages or drained by then). Refused at once, with nothing done, for a bad
   * `timeoutMs` (E_INVALID_ARGUMENT), a mechanism the device lacks (E_STATE_UNSUPPORTED), or
   * while another stop is under way (E_BAD_STATE); a device
   * that failed meanwhile rejects with its failure (E_DEVICE_NEEDS_RESET, …: recover()).
   * reinit / recover / resume, or a refused stop, post the buffers and open the ports again.
   */
  override async stop(options: StopOptions = {}): Promise<Mechanism> {
    // Steps 1 and 2 run as the stop's preparation, inside the device's one-operation lock: a stop
    // refused (a second one under way, a bad bound, a mechanism the device lacks, a device not
    // live) touches no port. One bound for the whole stop: the drain takes at most half of it,
    // PORT_OPEN 0 and the device's stop share the rest.
    let closedUntil: number | null = null;
    try {
      return await this.queues.stop(options, async (deadline, signal) => {
        const left = deadline - Date.now();
        await this.drainReceive(left / 2, signal);
        if (signal.aborted || this.device.phase !== 'live') return;
        closedUntil = deadline;
        // PORT_OPEN 0 may take until a quarter of the bound is left, which is the device's. Ports
        // the device has not heard are closed: the stop is refused before the device is asked
        // (a one-way STOP with no time left to show would fail it).
        if (!(await this.setPortsOpen(false, deadline - left / 4)) && !signal.aborted) {
          throw new TimeoutError('E_STOP_TIMEOUT', `${this.device.address}: the device did not take PORT_OPEN 0 for every port within the stop's bound`,
            'the device was not asked to stop and runs on, its ports open again; retry with a larger timeoutMs');
        }
      });
    } catch (e) {
      // Open again; waited for only until the deadline (the sends go on: a device that never
      // takes them fails on its own, through the watchdog).
      if (closedUntil !== null && this.device.phase === 'live') await this.setPortsOpen(true, closedUntil);
      throw e;
    }
  }

  /**
   * Step 1 of stop(): pauses every port receive queue (buffers coming back, and those of a port
   * added meanwhile, wait to be posted) and waits until the ports the host has open have none posted, or none came back for
   * receiveQuietMs, or `boundMs` passed, or the device stopped being live, or the stop gave up
   * (`signal`). Never throws.
   */
  private async drainReceive(boundMs: number, signal: AbortSignal): Promise<void> {
    // Every port's receive queue, live or not: a port the device adds meanwhile gets its buffers
    // held back here too, so it has none posted when PORT_OPEN 0 reaches it.
    for (let id = 0; id < this.maxPorts; id++) this.queues.get(consoleReceiveq(id))?.pause();
    // The ports the host has open, asked each time: one added or opened meanwhile counts too.
    const posted = (): number => {
      let n = 0;
      for (const [id, port] of this.live) if (port.hostOpen) n += this.queues.get(consoleReceiveq(id))?.vq.inFlight ?? 0;
      return n;
    };
    const end = Date.now() + boundMs;
    let last = posted();
    let quietSince = Date.now();
    for (let spins = 0; last > 0 && this.device.phase === 'live' && !signal.aborted; spins++) {
      const now = Date.now();
      if (now >= end || now - quietSince >= this.options.receiveQuietMs) return;
      await new Promise((r) => setTimeout(r, spins < 8 ? 1 : 5));
      const left = posted();
      if (left < last) quietSince = Date.now();
      last = left;
    }
  }

  /** Leaves a SUSPEND or quiesce stop without a reset, then opens the ports again (PORT_OPEN 1). */
  override async resume(): Promise<void> {
    await super.resume();
    await this.setPortsOpen(true);
  }

  /**
   * PORT_OPEN `open` for every live port; waits until the device took them, or until `deadline`
   * (ms since the epoch). Resolves whether every message was taken in time.
   */
  private async setPortsOpen(open: boolean, deadline?: number): Promise<boolean> {
    const control = this.control;
    if (!control) return true;
    // Each send is bounded by the device's request timeout (the watchdog); a failed one is the device's failure, reported there.
    const sent = Promise.allSettled([...this.live.keys()].map((id) => control.send(id, ConsoleEvent.PORT_OPEN, open ? 1 : 0))).then(() => true);
    if (deadline === undefined) return sent;
    let timer: NodeJS.Timeout | undefined;
    const taken = await Promise.race([sent, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()))))]);
    clearTimeout(timer);
    return taken;
  }

  /**
   * After reinit the device starts from reset: DEVICE_READY again; its DEVICE_ADDs for known ports
   * re-open them. Without MULTIPORT, port 0 is a new stream when the old one ended (onPort tells).
   */
  override async reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<void> {
    await super.reinit(snapshot, options);
    this.repostIdle();
    await this.announceAgain();
  }

  /** A recovered device starts from reset too: as after reinit. */
  override async recover(): Promise<void> {
    await super.recover();
    this.repostIdle();
    await this.announceAgain();
  }

  private async announceAgain(): Promise<void> {
    if (!this.control) {
      // Without MULTIPORT port 0 is there whenever the device is (§5.3.2): a stream that a failure
      // (or its user) ended comes back as a new one, as a multiport device's DEVICE_ADD brings its ports back.
      if (!this.live.has(0)) this.announce(this.addPort(0, true));
      return;
    }
    // A port the device does not add again (a target with fewer ports) must not take writes the
    // device would drop: its writes wait for the DEVICE_ADD, and fail with E_CLOSED when it has not
    // come within CONSOLE_PORT_WAIT_MS (the spec has no "no more ports" message, §5.3.6.2).
    for (const id of this.rx.keys()) {
      this.resyncing.add(id);
      this.live.get(id)?.holdWrites();
    }
    clearTimeout(this.resyncTimer);
    // Not unref'd: a held write keeps the process alive until its port is back or the bound ends it.
    this.resyncTimer = setTimeout(() => this.resyncExpired(), CONSOLE_PORT_WAIT_MS);
    await this.control.send(CONSOLE_BAD_ID, ConsoleEvent.DEVICE_READY, 1);
  }

  /** The device did not add these known ports again after its reset: they are gone. */
  private resyncExpired(): void {
    this.resyncTimer = undefined;
    for (const id of this.resyncing) {
      const p = this.live.get(id);
      if (!p) continue;
      this.live.delete(id);
      p.removed(`was not added again by the device within ${CONSOLE_PORT_WAIT_MS} ms (CONSOLE_PORT_WAIT_MS) after its reset`);
    }
    this.resyncing.clear();
  }

  /** A control message (or a malformed one) from the device, checked by events.ts. */
  private fromDevice(m: ControlMessage | UvirtioError): void {
    const problem = m instanceof Error ? m : handleControl(m, this.maxPorts, {
      port: (id) => this.live.get(id),
      added: (id) => this.added(id),
      removed: (id) => {
        const p = this.live.get(id);
        if (!p) return false;
        this.live.delete(id);
        p.removed();
        return true;
      },
      resize: (p, extra) => {
        const v = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
        p.size = { cols: v.getUint16(ConsoleResize.COLS, true), rows: v.getUint16(ConsoleResize.ROWS, true) };
        p.emit('resize', p.size);
      },
      consolePort: (p) => this.sendControl(p.id, ConsoleEvent.PORT_OPEN, 1),
    });
    if (!problem) return;
    this.badControl++;
    this.lastBadControl = problem;
  }

  /** DEVICE_ADD: a new port (PORT_READY, PORT_OPEN), or a known one the device announces again after a reset. */
  private added(id: number): boolean {
    if (this.resyncing.delete(id) && this.live.has(id)) {
      this.live.get(id)?.releaseWrites();
      if (this.resyncing.size === 0) clearTimeout(this.resyncTimer);
      this.sendControl(id, ConsoleEvent.PORT_READY, 1);
      this.sendControl(id, ConsoleEvent.PORT_OPEN, 1);
      return true;
    }
    if (this.live.has(id)) return false;
    this.sendControl(id, ConsoleEvent.PORT_READY, 1);
    const port = this.addPort(id, false);
    this.sendControl(id, ConsoleEvent.PORT_OPEN, 1);
    this.announce(port);
    return true;
  }

  private announce(port: ConsolePort): void {
    this.portListeners.emit(port);
  }

  private addPort(id: number, hostOpen: boolean): ConsolePort {
    let rx = this.rx.get(id);
    if (!rx) {
      const rq = this.queues.get(consoleReceiveq(id)) as RequestQueue<DmaRegion>;
      const fresh = new PortRx(rq, this.device.dma, () => this.closed);
      rx = fresh;
      this.rx.set(id, fresh);
      fresh.fill(Math.min(this.options.rxBuffers, rq.vq.size), this.options.bufferBytes);
    }
    const tx = this.queues.get(consoleTransmitq(id)) as RequestQueue<DmaRegion>;
    let txPool = this.txPools.get(id);
    if (!txPool) {
      txPool = new TxPool(this.device.dma, this.options.bufferBytes, Math.min(8, tx.vq.size));
      this.txPools.set(id, txPool);
    }
    const port = new ConsolePort(id, {
      tx, rx, txPool,
      closed: (p) => {
        if (this.live.get(p.id) === p) this.live.delete(p.id);
        if (!this.closed) this.sendControl(p.id, ConsoleEvent.PORT_OPEN, 0);
      },
      driverClosed: () => this.closed,
    }, hostOpen || !this.multiport);
    this.live.set(id, port);
    return port;
  }

  private sendControl(id: number, event: number, value: number): void {
    // Fire and forget: a failed send means a failed device, which surfaces through device health.
    this.control?.send(id, event, value).catch(() => undefined);
  }

  /** Resets the device; every port ends (E_CLOSED to pending writes), then the buffers are freed. */
  protected async shutDown(reason?: UvirtioError): Promise<void> {
    this.closed = true;
    clearTimeout(this.resyncTimer);
    const ports = [...this.live.values()];
    await this.queues.close(reason);
    for (const p of ports) p.destroy();
    this.release();
  }

  /** Frees every DMA buffer (receive, transmit, control): only after the device was reset. */
  private release(): void {
    for (const rx of this.rx.values()) rx.release();
    for (const pool of this.txPools.values()) pool.release();
    this.control?.release();
  }

  /** The device is live again: receive buffers a halted queue refused during the failure are posted again. */
  private repostIdle(): void {
    for (const rx of this.rx.values()) rx.restart();
    this.control?.restart();
  }
}

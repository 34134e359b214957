// VirtioTransport over vhost-user (QEMU docs/interop/vhost-user.rst): this process is the
// front-end, a back-end process (qemu-storage-daemon, DPDK, …) consumes the rings in our memory.
//
// vhost-user has no device_status register, so the front-end keeps the status machine itself and
// turns its transitions into messages:
//   open        connect; SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK, CONFIG),
//               GET_QUEUE_NUM, GET_CONFIG ("Communication", "Protocol features")
//   FEATURES_OK SET_FEATURES (the driver's features + VHOST_USER_F_PROTOCOL_FEATURES when offered);
//               a refusal (REPLY_ACK non-zero) leaves FEATURES_OK clear, as a device would
//   DRIVER_OK   SET_MEM_TABLE (the memfd arena), then per enabled queue SET_VRING_NUM, _BASE, _ADDR,
//               _KICK, _CALL, _ENABLE — BASE before ADDR, as QEMU sends them: a back-end reads
//               used->idx from ring memory at SET_VRING_ADDR ("Ring states")
//   reset       a session that set anything is ended: started rings are stopped (GET_VRING_BASE),
//               the connection closed, and the next ACKNOWLEDGE opens a fresh one. The back-end
//               drops a session's state with its connection, so a fresh connection is a reset.
// A hang-up of the back-end shows as DEVICE_NEEDS_RESET and is reported to onLost listeners
// (VirtioDevice fails the queues' pending requests with E_VHOST_LOST).
//
// Stop/state ('backend' mechanism): GET_VRING_BASE stops a ring and returns its next available
// index (split: bits 0–15; packed: SPEC-NOTES §2). For a split ring the used state is used->idx in
// ring memory. SET_VRING_BASE carries the state into a fresh session (same or other back-end).
//
// Requests in flight at GET_VRING_BASE: qemu-storage-daemon 7.2 (libvhost-user) answers at once
// with an index that counts requests it fetched but has not finished; it still carries them out
// (writes land on disk) but never publishes their completions (it closed the call fd, then logs
// "vu_panic: Error writing eventfd: Bad file descriptor" and drops every later used element).
// Their completions would be lost in a migration. So stopQueue (split) first lets the back-end
// finish what the driver made available (the driver's queues are paused: settle()), then sends
// GET_VRING_BASE, then checks (bounded) that used->idx reaches the answer; a back-end that keeps
// fetched requests unfinished fails the stop with E_STOP_TIMEOUT instead of losing them.

import { backoff } from '../backoff.js';
import { Feature, PACKED_STATE_WRAP, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../../virtio/constants.js';
import { DeviceError, TimeoutError, UsageError, type UvirtioError } from '../../virtio/errors.js';
import * as libc from '../../sys/libc.js';
import { POLL } from '../../sys/socket.js';
import type { BackendStateAccess, QueueSetup, RingStateAccess, VirtioTransport, VqState } from '../types.js';
import { MemfdArena } from './arena.js';
import { Channel, connectBackend } from './channel.js';
import { F_PROTOCOL_FEATURES, Payload, ProtocolFeature, Req, VRING_NOFD, WANTED_PROTOCOL_FEATURES, stateOf, u64Of } from './protocol.js';
import { Watcher, type Watched } from './watcher.js';

export interface VhostUserOptions {
  /** Virtio device type the back-end serves (vhost-user does not say): default 2 (blk). */
  deviceType?: number;
  /** Memory to share with an already open vhost-user transport (a migration target). */
  arena?: MemfdArena;
  /** Size of a new arena in bytes (default 64 MiB). */
  arenaBytes?: number;
  /** Bound on each reply from the back-end (default 5000 ms). */
  replyTimeoutMs?: number;
  /** Bound on the wait for a stopped ring's fetched requests to complete (default 5000 ms). */
  drainTimeoutMs?: number;
  /** The ring size offered as queueMaxSize (default 1024, libvhost-user's VIRTQUEUE_MAX_SIZE). */
  queueMaxSize?: number;
}

/** Device configuration bytes asked with GET_CONFIG, by device type (virtio 1.2 §5.2.4, §5.1.4). */
const CONFIG_LENGTH: Readonly<Record<number, number>> = { 1: 12, 2: 60 };
/** A back-end whose used->idx has not moved for this long is taken to be done with what it can finish. */
const SETTLE_MS = 2000;
/** Virtio bits never passed on: IOTLB messages are not implemented, so no IOMMU_PLATFORM. */
const HIDDEN_FEATURES = bit(F_PROTOCOL_FEATURES) | bit(Feature.ACCESS_PLATFORM);

interface QueueConf {
  size: number;
  desc: bigint;
  driver: bigint;
  device: bigint;
  vector: number;
  /** The SET_VRING_BASE payload's num for the next start. */
  base: number;
  /** The used state to hold in ring memory for a split ring (undefined: as it is). */
  used?: number;
  enabled: boolean;
}

/** What GET_VRING_BASE found, for reports and tests (the back-end's behaviour with requests in flight). */
export interface StopObservation {
  queue: number;
  /** avail->idx and used->idx when the stop began, and how long the back-end took to settle. */
  availPublished: number;
  usedBeforeSettle: number;
  settleMs: number;
  /** GET_VRING_BASE's answer, used->idx then, and once the fetched requests completed. */
  availIdx: number;
  usedIdxAtReply: number;
  usedIdxAfterDrain: number;
  drainMs: number;
}

export class VhostUserTransport implements VirtioTransport {
  readonly deviceType: number;
  readonly dma: MemfdArena;
  readonly ringState: RingStateAccess;
  readonly backendState: BackendStateAccess;
  numQueues = 1;
  configLength = 0;
  /** The back-end's virtio features (GET_FEATURES) and the protocol features both sides agreed. */
  private backendFeatures = 0n;
  protocolFeatures = 0n;
  offeredProtocolFeatures = 0n;
  private config = new Uint8Array(0);
  private channel: Channel | null = null;
  /** Whether this session set anything the back-end keeps (features, memory, rings). */
  private dirty = false;
  private status = 0;
  private driverFeatures = 0n;
  private readonly queues = new Map<number, QueueConf>();
  private readonly started = new Set<number>();
  private readonly kickFds = new Map<number, number>();
  private readonly callFds = new Map<number, number>();
  private irq: { handler: (vector: number) => void; vectors: number } | null = null;
  private readonly lostListeners = new Set<(e: UvirtioError) => void>();
  private readonly watcher: Watcher;
  private readonly options: VhostUserOptions;
  private closed = false;
  /** One entry per GET_VRING_BASE. */
  readonly stops: StopObservation[] = [];

  private constructor(readonly address: string, readonly path: string, options: VhostUserOptions) {
    this.options = options;
    this.deviceType = options.deviceType ?? 2;
    this.dma = options.arena ? options.arena.retain() : new MemfdArena(options.arenaBytes);
    this.watcher = new Watcher(() => this.watched());
    this.ringState = {
      readVqState: (q) => this.lastState(q),
      writeVqState: (q, s) => this.setVqState(q, s),
      hasDeviceState: false,
      saveDeviceState: () => 0,
      loadDeviceState: () => {
        throw new DeviceError('E_STATE_UNSUPPORTED', `${this.address}: vhost-user carries no device state`);
      },
      deviceStateLength: () => 0,
    };
    this.backendState = { stopQueue: (q) => this.stopQueue(q) };
  }

  /** Connects and learns what the back-end offers; ENOENT/ECONNREFUSED are E_VHOST_UNREACHABLE. */
  static open(address: string, path: string, options: VhostUserOptions = {}): VhostUserTransport {
    const t = new VhostUserTransport(address, path, options);
    try {
      t.connect();
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  // ---- the connection ----

  private connect(): void {
    const timeout = this.options.replyTimeoutMs ?? 5000;
    const ch = new Channel(connectBackend(this.path, this.address, timeout), this.address, { replyTimeoutMs: timeout });
    try {
      ch.send(Req.SET_OWNER); // "Issued when a new connection is established"
      this.backendFeatures = u64Of(expectSize(ch.call(Req.GET_FEATURES), 8, 'GET_FEATURES', this.address));
      this.protocolFeatures = 0n;
      if (hasFeature(this.backendFeatures, F_PROTOCOL_FEATURES)) {
        const offered = u64Of(expectSize(ch.call(Req.GET_PROTOCOL_FEATURES), 8, 'GET_PROTOCOL_FEATURES', this.address));
        this.offeredProtocolFeatures = offered;
        this.protocolFeatures = offered & WANTED_PROTOCOL_FEATURES;
        ch.send(Req.SET_PROTOCOL_FEATURES, Payload.u64(this.protocolFeatures));
      }
      this.numQueues = this.deviceType === 1 ? 2 : 1;
      if (this.hasProtocol(ProtocolFeature.MQ)) {
        const n = Number(u64Of(expectSize(ch.call(Req.GET_QUEUE_NUM), 8, 'GET_QUEUE_NUM', this.address)));
        if (!Number.isInteger(n) || n < 1 || n > 256) throw protocolError(this.address, `GET_QUEUE_NUM answered ${n}`);
        this.numQueues = this.deviceType === 1 ? 2 * n : n;
      }
      this.channel = ch;
      this.dirty = false;
      this.configLength = this.hasProtocol(ProtocolFeature.CONFIG) ? CONFIG_LENGTH[this.deviceType] ?? 0 : 0;
      this.refreshConfig();
    } catch (e) {
      this.channel = null;
      ch.close();
      throw e;
    }
    this.watcher.refresh();
  }

  private hasProtocol(n: number): boolean {
    return ((this.protocolFeatures >> BigInt(n)) & 1n) === 1n;
  }

  private live(): Channel {
    if (this.closed) throw new DeviceError('E_CLOSED', `${this.address}: the transport is closed`);
    if (!this.channel) this.connect();
    const ch = this.channel!;
    if (ch.lost) throw ch.lost;
    return ch;
  }

  /** A setting message: acknowledged (REPLY_ACK) when negotiated, so a refusal is an error here. */
  private set(request: number, payload?: Uint8Array, fds?: readonly number[]): void {
    const ch = this.live();
    this.dirty = true;
    if (this.hasProtocol(ProtocolFeature.REPLY_ACK)) ch.callAck(request, payload, fds);
    else ch.send(request, payload, fds);
  }

  /** The socket (for hang-ups) and, with interrupts on, each started queue's call eventfd. */
  private watched(): Watched[] {
    const w: Watched[] = [];
    const ch = this.channel;
    if (ch && !ch.lost && !this.closed) {
      w.push({ fd: ch.fd, events: POLL.RDHUP, ready: (rev) => this.onSocket(ch, rev) });
    }
    const irq = this.irq;
    if (irq && !this.closed) {
      for (const [q, conf] of this.queues) {
        const fd = this.callFds.get(q);
        if (fd === undefined || conf.vector === VIRTIO_MSI_NO_VECTOR) continue;
        w.push({ fd, events: POLL.IN, ready: () => {
          libc.eventfdTake(fd);
          if (this.irq === irq) irq.handler(conf.vector);
        } });
      }
    }
    return w;
  }

  private onSocket(ch: Channel, revents: number): void {
    if (ch !== this.channel || !(revents & (POLL.HUP | POLL.RDHUP | POLL.ERR))) return;
    const e = ch.markLost('hung up (its socket closed)');
    this.watcher.refresh();
    for (const l of this.lostListeners) l(e);
  }

  /** Called once when the back-end goes away for good (hang-up while connected). */
  onLost(listener: (e: UvirtioError) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** Ends this session: started rings are stopped first, then the socket is closed. */
  private endSession(): void {
    const ch = this.channel;
    if (!ch) return;
    this.channel = null;
    if (!ch.lost) {
      for (const q of this.started) {
        try {
          ch.call(Req.GET_VRING_BASE, Payload.state(q, 0));
        } catch {
          break; // the session ends anyway
        }
      }
    }
    this.started.clear();
    ch.end();
    this.watcher.refresh();
    this.watcher.whenIdle(() => ch.release());
  }

  // ---- status (kept by the front-end: there is no vhost-user message for it) ----

  readStatus(): number {
    return this.status | (this.channel?.lost ? Status.DEVICE_NEEDS_RESET : 0);
  }

  writeStatus(status: number): void {
    if (status === 0) {
      this.resetNow();
      return;
    }
    const added = status & ~this.status;
    if (added & Status.ACKNOWLEDGE) this.live();
    if (added & Status.FEATURES_OK && !this.setFeatures()) status &= ~Status.FEATURES_OK;
    if (added & Status.DRIVER_OK) this.start();
    this.status = status & ~Status.DEVICE_NEEDS_RESET;
  }

  private resetNow(): void {
    if (this.dirty || this.channel?.lost) this.endSession();
    this.status = 0;
    this.driverFeatures = 0n;
    this.queues.clear();
  }

  async reset(_timeoutMs: number): Promise<void> {
    this.resetNow();
  }

  deviceFeatures(): bigint {
    if (!this.channel && !this.closed) this.live();
    return this.backendFeatures & ~HIDDEN_FEATURES;
  }

  writeDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }

  /** SET_FEATURES; false when the features are not a subset of the offer or the back-end refuses them. */
  private setFeatures(): boolean {
    if ((this.driverFeatures & ~(this.backendFeatures & ~HIDDEN_FEATURES)) !== 0n) return false;
    const withProtocol = this.driverFeatures | (this.backendFeatures & bit(F_PROTOCOL_FEATURES));
    try {
      this.set(Req.SET_FEATURES, Payload.u64(withProtocol));
    } catch (e) {
      if (e instanceof DeviceError && e.code === 'E_VHOST_REFUSED') return false;
      throw e;
    }
    return true;
  }

  // ---- queues ----

  queueMaxSize(q: number): number {
    if (!Number.isInteger(q) || q < 0 || q >= this.numQueues) return 0;
    return this.options.queueMaxSize ?? 1024;
  }

  private packed(): boolean {
    return hasFeature(this.driverFeatures, Feature.RING_PACKED);
  }

  configureQueue(q: number, setup: QueueSetup): number {
    if (this.queueMaxSize(q) === 0) {
      throw new UsageError('E_QUEUE_UNAVAILABLE', `${this.address}: queue ${q} does not exist (the back-end has ${this.numQueues})`);
    }
    for (const m of [this.kickFds, this.callFds]) if (!m.has(q)) m.set(q, libc.eventfd());
    const vector = this.irq && setup.vector !== VIRTIO_MSI_NO_VECTOR && setup.vector < this.irq.vectors ? setup.vector : VIRTIO_MSI_NO_VECTOR;
    const initial = this.packed() ? PACKED_STATE_WRAP | (PACKED_STATE_WRAP << 16) : 0;
    this.queues.set(q, {
      size: setup.size, desc: setup.addresses.desc, driver: setup.addresses.driver, device: setup.addresses.device,
      vector, base: initial, enabled: false,
    });
    this.watcher.refresh();
    return vector;
  }

  enableQueue(q: number): void {
    const conf = this.queues.get(q);
    if (!conf) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    conf.enabled = true;
    if (this.status & Status.DRIVER_OK) this.startQueue(q, conf);
  }

  notifier(q: number): () => void {
    const fd = this.kickFds.get(q);
    if (fd === undefined) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    // A kick is a write to the kick eventfd (VHOST_USER_SET_VRING_KICK); harmless after a hang-up.
    return () => libc.eventfdSignal(fd);
  }

  /** DRIVER_OK: share the memory, then start every enabled ring. */
  private start(): void {
    const a = this.dma;
    this.set(Req.SET_MEM_TABLE, Payload.memTable([{ guest: a.guestBase, size: BigInt(a.size), user: a.userBase, offset: 0n }]), [a.fd]);
    for (const [q, conf] of this.queues) if (conf.enabled) this.startQueue(q, conf);
  }

  private startQueue(q: number, conf: QueueConf): void {
    if (conf.used !== undefined) this.usedIdxView(conf).setUint16(0, conf.used, true);
    const a = this.dma;
    this.set(Req.SET_VRING_NUM, Payload.state(q, conf.size));
    this.set(Req.SET_VRING_BASE, Payload.state(q, conf.base));
    this.set(Req.SET_VRING_ADDR, Payload.addr(q, a.userAddress(conf.desc), a.userAddress(conf.device), a.userAddress(conf.driver)));
    this.set(Req.SET_VRING_KICK, Payload.u64(BigInt(q)), [this.kickFds.get(q)!]);
    const call = this.callFds.get(q);
    this.set(Req.SET_VRING_CALL, Payload.u64(BigInt(q) | (call === undefined ? BigInt(VRING_NOFD) : 0n)), call === undefined ? [] : [call]);
    if (hasFeature(this.backendFeatures, F_PROTOCOL_FEATURES)) this.set(Req.SET_VRING_ENABLE, Payload.state(q, 1));
    this.started.add(q);
  }

  // ---- stop / virtqueue state ('backend' mechanism) ----

  /** used->idx of a split ring: the le16 at offset 2 of the used ring (virtio 1.2 §2.7.8). */
  private usedIdxView(conf: QueueConf): DataView {
    const b = this.dma.view(conf.device + 2n, 2);
    return new DataView(b.buffer, b.byteOffset, 2);
  }

  private lastStates = new Map<number, VqState>();

  private lastState(q: number): VqState {
    const s = this.lastStates.get(q);
    if (!s) throw new DeviceError('E_STATE_NOT_STOPPED', `${this.address}: queue ${q} has not been stopped (GET_VRING_BASE)`);
    return s;
  }

  /** SET_VRING_BASE for the next start of ring q (between FEATURES_OK and DRIVER_OK). */
  private setVqState(q: number, s: VqState): void {
    const conf = this.queues.get(q);
    if (!conf) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    if (this.packed()) {
      conf.base = ((s.avail & 0xffff) | ((s.used & 0xffff) << 16)) >>> 0;
    } else {
      conf.base = s.avail & 0xffff;
      // A split ring's used state lives in ring memory (the back-end reads used->idx at SET_VRING_ADDR).
      conf.used = s.used & 0xffff;
    }
  }

  /** avail->idx of a split ring: what the driver has published (the le16 at offset 2 of the avail ring). */
  private availIdx(conf: QueueConf): number {
    const b = this.dma.view(conf.driver + 2n, 2);
    return new DataView(b.buffer, b.byteOffset, 2).getUint16(0, true);
  }

  /**
   * Before GET_VRING_BASE: lets the back-end finish what the driver made available (the driver
   * adds nothing meanwhile: its RequestQueues are paused). Ends when used->idx reaches avail->idx,
   * or when used->idx has not moved for SETTLE_MS (buffers that wait on outside events, e.g. net
   * rx, never complete by themselves), bounded by the drain timeout.
   */
  private async settle(conf: QueueConf, limit: number): Promise<void> {
    const view = this.usedIdxView(conf);
    const t0 = Date.now();
    let last = view.getUint16(0, true);
    let moved = t0;
    for (let spins = 0; view.getUint16(0, true) !== this.availIdx(conf); spins++) {
      const now = Date.now();
      const used = view.getUint16(0, true);
      if (used !== last) [last, moved] = [used, now];
      if (now - moved > SETTLE_MS || now - t0 > limit) return;
      await backoff(spins);
    }
  }

  async stopQueue(q: number): Promise<VqState> {
    const conf = this.queues.get(q);
    if (!conf || !this.started.has(q)) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not running`);
    const limit = this.options.drainTimeoutMs ?? 5000;
    const availBefore = this.packed() ? -1 : this.availIdx(conf);
    const usedBefore = this.packed() ? -1 : this.usedIdxView(conf).getUint16(0, true);
    const settleStart = Date.now();
    if (!this.packed()) await this.settle(conf, limit);
    const settleMs = Date.now() - settleStart;
    const ch = this.live();
    const reply = ch.call(Req.GET_VRING_BASE, Payload.state(q, 0));
    const { index, num } = stateOf(expectSize(reply, 8, 'GET_VRING_BASE', this.address));
    if (index !== q) throw protocolError(this.address, `GET_VRING_BASE for ring ${q} answered ring ${index}`);
    this.started.delete(q);
    let state: VqState;
    if (this.packed()) {
      state = { avail: num & 0xffff, used: (num >>> 16) & 0xffff };
    } else {
      const avail = num & 0xffff;
      const view = this.usedIdxView(conf);
      const usedAtReply = view.getUint16(0, true);
      const t0 = Date.now();
      for (let spins = 0; view.getUint16(0, true) !== avail; spins++) {
        if (ch.lost) throw ch.lost;
        if (Date.now() - t0 > limit) {
          const used = view.getUint16(0, true);
          throw new TimeoutError('E_STOP_TIMEOUT',
            `${this.address}: ring ${q} stopped at available index ${avail}, but ${(avail - used) & 0xffff} fetched request(s) did not complete within ${limit} ms (used->idx ${used})`,
            'the back-end is stuck on I/O; its requests would be lost in a migration — retry later or with a longer drain timeout');
        }
        await backoff(spins);
      }
      state = { avail, used: view.getUint16(0, true) };
      this.stops.push({
        queue: q, availPublished: availBefore, usedBeforeSettle: usedBefore, settleMs,
        availIdx: avail, usedIdxAtReply: usedAtReply, usedIdxAfterDrain: state.used, drainMs: Date.now() - t0,
      });
    }
    this.lastStates.set(q, state);
    return state;
  }

  // ---- interrupts: each queue's call eventfd is its vector ----

  enableInterrupts(vectorsWanted: number, handler: (vector: number) => void): number {
    const vectors = Math.max(0, Math.min(Math.floor(vectorsWanted), 1 + this.numQueues));
    this.irq = vectors > 0 ? { handler, vectors } : null;
    this.watcher.refresh();
    return vectors;
  }
  /** Vector 0 (configuration changes) is accepted; it never fires (no SLAVE_REQ channel). */
  setConfigVector(vector: number): number {
    return this.irq && vector < this.irq.vectors ? vector : VIRTIO_MSI_NO_VECTOR;
  }
  disableInterrupts(): void {
    this.irq = null;
    this.watcher.refresh();
  }

  // ---- device configuration (GET_CONFIG; cached, re-read for byte ranges) ----

  private refreshConfig(): void {
    if (this.configLength === 0 || !this.channel || this.channel.lost) return;
    const m = this.channel.call(Req.GET_CONFIG, Payload.config(0, this.configLength));
    // "vhost-user back-end uses zero length of payload to indicate an error"
    if (m.payload.length !== 12 + this.configLength) {
      throw new DeviceError('E_VHOST_REFUSED', `${this.address}: GET_CONFIG of ${this.configLength} bytes answered ${m.payload.length - 12} bytes`,
        'the back-end could not read its configuration; check the device type (vhost-user:/path?type=blk|net)');
    }
    this.config = m.payload.slice(12);
  }

  private configView(offset: number, width: number): DataView {
    if (offset < 0 || offset + width > this.config.length) {
      throw new DeviceError('E_CAP_MISSING', `${this.address}: device configuration bytes ${offset}..${offset + width - 1} are not available (the back-end gave ${this.config.length})`,
        'the back-end must offer VHOST_USER_PROTOCOL_F_CONFIG');
    }
    return new DataView(this.config.buffer, this.config.byteOffset + offset, width);
  }
  readConfig8(offset: number): number {
    return this.configView(offset, 1).getUint8(0);
  }
  readConfig16(offset: number): number {
    return this.configView(offset, 2).getUint16(0, true);
  }
  readConfig32(offset: number): number {
    return this.configView(offset, 4).getUint32(0, true);
  }
  readConfig64(offset: number): bigint {
    return this.configView(offset, 8).getBigUint64(0, true);
  }
  readConfigBytes(offset: number, length: number): Uint8Array {
    if (this.channel && !this.channel.lost) this.refreshConfig();
    this.configView(offset, length);
    return this.config.slice(offset, offset + length);
  }
  private noConfigWrites(): never {
    throw new DeviceError('E_UNSUPPORTED', `${this.address}: writing device configuration (VHOST_USER_SET_CONFIG) is not implemented`);
  }
  writeConfig8(): void {
    this.noConfigWrites();
  }
  writeConfig16(): void {
    this.noConfigWrites();
  }
  writeConfig32(): void {
    this.noConfigWrites();
  }

  /** Ends the session, the watch and the eventfds; releases this transport's hold on the arena. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.endSession();
    this.closed = true;
    this.irq = null;
    const fds = [...this.kickFds.values(), ...this.callFds.values()];
    this.kickFds.clear();
    this.callFds.clear();
    this.watcher.whenIdle(() => fds.forEach((fd) => libc.close(fd)));
    this.watcher.stop();
    this.lostListeners.clear();
    this.dma.close();
  }
}

function protocolError(address: string, message: string): DeviceError {
  return new DeviceError('E_VHOST_PROTOCOL', `${address}: ${message}`, 'the back-end does not speak vhost-user as expected');
}

function expectSize<T extends { payload: Uint8Array }>(m: T, size: number, what: string, address: string): T {
  if (m.payload.length < size) throw protocolError(address, `${what} answered ${m.payload.length} bytes, expected ${size}`);
  return m;
}

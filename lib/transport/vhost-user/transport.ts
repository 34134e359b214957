// VirtioTransport over vhost-user (QEMU docs/interop/vhost-user.rst): this process is the
// front-end, a back-end process (qemu-storage-daemon, DPDK, …) consumes the rings in our memory.
//
// vhost-user has no device_status register, so the front-end keeps the status machine itself and
// turns its transitions into messages, sent at once and answered later (flush() waits, bounded):
//   open        connect and handshake (session.ts)
//   FEATURES_OK SET_FEATURES (the driver's features + VHOST_USER_F_PROTOCOL_FEATURES when offered);
//               a refusal (REPLY_ACK non-zero) clears FEATURES_OK once flushed, as a device would
//   DRIVER_OK   SET_MEM_TABLE (the memfd arena), then each enabled ring's messages (rings.ts)
//   reset       a session that set anything is ended — started rings drained and stopped first
//               (GET_VRING_BASE), the connection closed — and a fresh one is opened and handshaken:
//               the back-end drops a session's state with its connection, so that is a reset.
// Without REPLY_ACK a setting has no answer; flush() then asks GET_FEATURES, whose answer comes
// after the back-end has read everything sent before it.
//
// A back-end that hangs up, breaks the protocol or stops answering ends the session: readStatus()
// shows DEVICE_NEEDS_RESET and onLost listeners hear the typed error (VirtioDevice then fails the
// queues' pending requests with it).
//
// Stop/state ('backend' mechanism): backend-state.ts. A reset lets the back-end finish the
// requests of running rings (settle, GET_VRING_BASE, used->idx reaching its answer) before it ends
// the session, so that no request of ours is still in the back-end when the next session (or
// another driver) takes the memory (virtio 1.2 §2.4).

import { Feature, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../../spec/index.js';
import { DeviceError, UsageError, isUvirtioError, type UvirtioError } from '../../errors.js';
import * as libc from '../../sys/libc.js';
import { POLL } from '../../sys/socket.js';
import type { BackendStateAccess, QueueSetup, RingStateAccess, VirtioTransport } from '../types.js';
import { MemfdArena } from './arena.js';
import type { Channel } from './channel.js';
import * as err from './errors.js';
import { F_PROTOCOL_FEATURES, Payload, ProtocolFeature, Req } from './protocol.js';
import { BackendState, type StopObservation } from './backend-state.js';
import { SplitIndices, drained, initialBase, settle, startMessages, type RingConf } from './rings.js';
import { hasProtocol, openSession, type BackendInfo, type Session } from './session.js';
import { Watcher, type Watched } from './watcher.js';

export type { StopObservation } from './backend-state.js';

export interface VhostUserOptions {
  /** Virtio device type the back-end serves (vhost-user does not say): default 2 (blk). */
  deviceType?: number;
  /** Memory to share with an already open vhost-user transport (a migration target). */
  arena?: MemfdArena;
  /** Size of a new arena in bytes (default 64 MiB). */
  arenaBytes?: number;
  /** Bound on the connect and on each reply from the back-end (default 5000 ms). */
  replyTimeoutMs?: number;
  /** Bound on the wait for a stopped ring's fetched requests to complete (default 5000 ms). */
  drainTimeoutMs?: number;
  /** The ring size offered as queueMaxSize (default 1024, libvhost-user's VIRTQUEUE_MAX_SIZE). */
  queueMaxSize?: number;
}

/** Virtio bits never passed on: IOTLB messages are not implemented, so no IOMMU_PLATFORM. */
const HIDDEN_FEATURES = bit(F_PROTOCOL_FEATURES) | bit(Feature.ACCESS_PLATFORM);

export class VhostUserTransport implements VirtioTransport {
  readonly deviceType: number;
  readonly dma: MemfdArena;
  readonly ringState: RingStateAccess;
  readonly backendState: BackendStateAccess;
  private session: Session | null;
  /** What the last handshake learnt (kept while no session is open). */
  private info: BackendInfo;
  /** Why no session is open: the failed reconnect of the last reset(), thrown by what needs one. */
  private connectError: UvirtioError | null = null;
  /** Whether this session set anything the back-end keeps (features, memory, rings). */
  private dirty = false;
  private status = 0;
  private driverFeatures = 0n;
  private readonly queues = new Map<number, RingConf>();
  private readonly started = new Set<number>();
  private readonly kickFds = new Map<number, number>();
  private readonly callFds = new Map<number, number>();
  private irq: { handler: (vector: number) => void; vectors: number } | null = null;
  private readonly lostListeners = new Set<(e: UvirtioError) => void>();
  private readonly watcher = new Watcher(() => this.watched());
  private readonly replyTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  /** Messages sent since the last flush() whose answers it waits for. */
  private work: Promise<unknown>[] = [];
  /** Settings sent without REPLY_ACK since the last flush(). */
  private unconfirmed = false;
  private readonly state: BackendState;
  private closed = false;

  private constructor(readonly address: string, readonly path: string, private readonly options: VhostUserOptions, session: Session) {
    this.deviceType = options.deviceType ?? 2;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 5000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5000;
    this.dma = options.arena ? options.arena.retain() : new MemfdArena(options.arenaBytes);
    this.session = null;
    this.info = session.info;
    this.adopt(session);
    this.state = new BackendState({
      address, dma: this.dma, drainTimeoutMs: this.drainTimeoutMs,
      ring: (q) => this.queues.get(q),
      running: (q) => this.started.has(q),
      stopped: (q) => this.started.delete(q),
      packed: () => this.packed(),
      channel: () => this.channel(),
    });
    this.ringState = this.state.ringState;
    this.backendState = this.state.backendState;
  }

  /** One entry per GET_VRING_BASE of the 'backend' stop (what the back-end did with requests in flight). */
  get stops(): readonly StopObservation[] {
    return this.state.stops;
  }

  /**
   * Connects and learns what the back-end offers, bounded by the reply timeout. Rejects with
   * E_VHOST_UNREACHABLE (nothing listens), E_VHOST_BUSY (it serves another front-end),
   * E_VHOST_TIMEOUT, E_VHOST_PROTOCOL, E_VHOST_LOST, E_VHOST_NOT_SOCKET.
   */
  static async open(address: string, path: string, options: VhostUserOptions = {}): Promise<VhostUserTransport> {
    const session = await openSession(path, address, options.deviceType ?? 2, options.replyTimeoutMs ?? 5000);
    try {
      return new VhostUserTransport(address, path, options, session);
    } catch (e) {
      session.channel.close();
      throw e;
    }
  }

  get numQueues(): number {
    return this.info.numQueues;
  }
  get configLength(): number {
    return this.info.config.length;
  }
  /** The protocol features the back-end offered, and those both sides agreed. */
  get offeredProtocolFeatures(): bigint {
    return this.info.offeredProtocolFeatures;
  }
  get protocolFeatures(): bigint {
    return this.info.protocolFeatures;
  }

  // ---- the session ----

  private adopt(s: Session): void {
    this.session = s;
    this.info = s.info;
    this.connectError = null;
    this.dirty = false;
    s.channel.onFailure((e) => {
      if (s !== this.session || this.closed) return;
      for (const l of this.lostListeners) l(e);
    });
  }

  /** Called once when the session dies under us (hang-up, broken protocol, no answer in time). */
  onLost(listener: (e: UvirtioError) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  /** The live session's channel, or the typed reason there is none. */
  private channel(): Channel {
    if (this.closed) throw new DeviceError('E_CLOSED', `${this.address}: the transport is closed`);
    const s = this.session;
    if (!s) throw this.connectError ?? err.lost(this.address, 'is not connected (its session ended; reset the device to connect again)');
    if (s.channel.failed) throw s.channel.failed;
    return s.channel;
  }

  /** A setting message, acknowledged when REPLY_ACK was negotiated. Never throws: failures reject. */
  private set(request: number, payload?: Uint8Array, fds?: readonly number[]): Promise<void> {
    try {
      const ch = this.channel();
      this.dirty = true;
      if (hasProtocol(this.info, ProtocolFeature.REPLY_ACK)) return ch.ack(request, payload, fds);
      ch.post(request, payload, fds);
      this.unconfirmed = true;
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** Work flush() waits for; a failure nobody flushes is not an unhandled rejection (onLost reports losses). */
  private track(p: Promise<unknown>): void {
    p.catch(() => undefined);
    this.work.push(p);
  }

  /**
   * Waits until the back-end has answered every message sent so far, bounded by timeoutMs (and
   * each answer by the reply timeout). Rejects with the first failure.
   */
  async flush(timeoutMs: number): Promise<void> {
    try {
      // No session (lost, or the last reconnect failed): nothing sent was taken, and that is why.
      const ch = this.channel();
      if (this.unconfirmed) this.track(ch.ask(Req.GET_FEATURES, undefined, [8]));
    } catch (e) {
      this.track(Promise.reject(e as Error));
    }
    this.unconfirmed = false;
    const work = this.work;
    this.work = [];
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(err.timeout(this.address, `the ${work.length} message(s) sent since the last flush`, timeoutMs)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(work), bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends a session that set anything (started rings drained and stopped first, bounded by
   * timeoutMs) and opens a fresh one, so deviceFeatures(), numQueues and the configuration are
   * known afterwards. A failed reconnect does not reject — the device is reset either way, and
   * closing a device whose back-end died must not throw — it is kept and surfaces where the
   * back-end is needed next (the flush after FEATURES_OK); the next reset() tries again.
   */
  async reset(timeoutMs: number): Promise<void> {
    const old = this.session;
    const started = [...this.started].map((q) => [q, this.queues.get(q)!] as const);
    const packed = this.packed();
    this.status = 0;
    this.driverFeatures = 0n;
    this.queues.clear();
    this.started.clear();
    this.work = [];
    this.unconfirmed = false;
    this.watcher.refresh();
    if (old && (this.dirty || old.channel.failed)) {
      this.session = null;
      await this.endSession(old, started, packed, timeoutMs);
    }
    if (!this.session && !this.closed) {
      try {
        const s = await openSession(this.path, this.address, this.deviceType, this.replyTimeoutMs);
        if (this.closed) s.channel.close();
        else this.adopt(s);
      } catch (e) {
        this.connectError = isUvirtioError(e) ? e : new DeviceError('E_VHOST_LOST', `${this.address}: ${String(e)}`);
      }
    }
  }

  /** Drains and stops the rings still running (bounded by timeoutMs, best effort), then closes the connection. */
  private async endSession(s: Session, rings: readonly (readonly [number, RingConf])[], packed: boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(0, deadline - Date.now());
    try {
      for (const [q, conf] of rings) {
        if (s.channel.failed) break;
        const ring = packed ? null : new SplitIndices(this.dma, conf);
        if (ring) await settle(ring, left(), () => s.channel.failed !== null);
        const answer = await withDeadline(s.channel.ask(Req.GET_VRING_BASE, Payload.state(q, 0), [8]), left());
        if (ring && answer) await drained(ring, new DataView(answer.buffer, answer.byteOffset, 8).getUint32(4, true) & 0xffff, left(), () => s.channel.failed !== null);
      }
    } catch {
      // The session ends anyway; what went wrong with it does not concern the reset.
    } finally {
      s.channel.close();
    }
  }

  // ---- status (kept by the front-end: there is no vhost-user message for it) ----

  readStatus(): number {
    return this.status | (this.session?.channel.failed ? Status.DEVICE_NEEDS_RESET : 0);
  }

  writeStatus(status: number): void {
    if (status === 0) {
      // A reset without waiting: the session ends now; the next reset() opens a fresh one.
      if (this.session && (this.dirty || this.session.channel.failed)) {
        this.session.channel.close();
        this.session = null;
      }
      this.status = 0;
      this.driverFeatures = 0n;
      this.queues.clear();
      this.started.clear();
      this.work = [];
      this.watcher.refresh();
      return;
    }
    const added = status & ~this.status;
    this.status = status & ~Status.DEVICE_NEEDS_RESET;
    if (added & Status.FEATURES_OK) this.setFeatures();
    if (added & Status.DRIVER_OK) this.start();
  }

  /** What the back-end offered at the last handshake (with no session open, the flush after FEATURES_OK says why). */
  deviceFeatures(): bigint {
    return this.info.features & ~HIDDEN_FEATURES;
  }

  writeDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }

  /** SET_FEATURES; FEATURES_OK is cleared when the features are not a subset of the offer or the back-end refuses them. */
  private setFeatures(): void {
    if ((this.driverFeatures & ~(this.info.features & ~HIDDEN_FEATURES)) !== 0n) {
      this.status &= ~Status.FEATURES_OK;
      return;
    }
    const withProtocol = this.driverFeatures | (this.info.features & bit(F_PROTOCOL_FEATURES));
    this.track(this.set(Req.SET_FEATURES, Payload.u64(withProtocol)).catch((e: unknown) => {
      if (isUvirtioError(e) && e.code === 'E_VHOST_REFUSED') this.status &= ~Status.FEATURES_OK;
      else throw e;
    }));
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
    // The same kick/call eventfds serve every session: a back-end closes its copies when a ring
    // stops (GET_VRING_BASE) or its session ends, and a late write by one only looks like a
    // spurious notification, after which the driver finds nothing new.
    for (const m of [this.kickFds, this.callFds]) if (!m.has(q)) m.set(q, libc.eventfd());
    const vector = this.irq && setup.vector !== VIRTIO_MSI_NO_VECTOR && setup.vector < this.irq.vectors ? setup.vector : VIRTIO_MSI_NO_VECTOR;
    this.queues.set(q, {
      size: setup.size, desc: setup.addresses.desc, driver: setup.addresses.driver, device: setup.addresses.device,
      vector, base: initialBase(this.packed()), enabled: false,
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
    this.track(this.set(Req.SET_MEM_TABLE, Payload.memTable([{ guest: a.guestBase, size: BigInt(a.size), user: a.userBase, offset: 0n }]), [a.fd]));
    for (const [q, conf] of this.queues) if (conf.enabled) this.startQueue(q, conf);
  }

  private startQueue(q: number, conf: RingConf): void {
    if (conf.used !== undefined) new SplitIndices(this.dma, conf).setUsedIdx(conf.used);
    const enable = hasFeature(this.info.features, F_PROTOCOL_FEATURES);
    for (const [request, payload, fds] of startMessages(q, conf, this.dma, this.kickFds.get(q)!, this.callFds.get(q), enable)) {
      this.track(this.set(request, payload, fds));
    }
    this.started.add(q);
    // "Starting and stopping rings": a ring starts processing on a kick. One now makes the
    // back-end look at buffers made available before it started (after a reinit, those it never
    // fetched); with none, it finds nothing to do.
    libc.eventfdSignal(this.kickFds.get(q)!);
  }

  // ---- interrupts: each queue's call eventfd is its vector ----

  /**
   * With interrupts on, each configured queue's call eventfd (the back-end writes it when it used
   * buffers). The watcher asks for this set again whenever a poll returns and takes the handlers
   * from it — never from the set a poll was armed with (watcher.ts: the reinit stall of issue 10).
   */
  private watched(): Watched[] {
    const irq = this.irq;
    if (!irq || this.closed) return [];
    const w: Watched[] = [];
    for (const [q, conf] of this.queues) {
      const fd = this.callFds.get(q);
      if (fd === undefined || conf.vector === VIRTIO_MSI_NO_VECTOR) continue;
      w.push({ fd, events: POLL.IN, ready: () => {
        libc.eventfdTake(fd);
        irq.handler(conf.vector);
      } });
    }
    return w;
  }

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

  // ---- device configuration: GET_CONFIG at each handshake (changes would come on SLAVE_REQ, not negotiated) ----

  private configView(offset: number, width: number): DataView {
    const config = this.info.config;
    if (offset < 0 || offset + width > config.length) {
      throw new DeviceError('E_CAP_MISSING', `${this.address}: device configuration bytes ${offset}..${offset + width - 1} are not available (the back-end gave ${config.length})`,
        'the back-end must offer VHOST_USER_PROTOCOL_F_CONFIG');
    }
    return new DataView(config.buffer, config.byteOffset + offset, width);
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
    this.configView(offset, length);
    return this.info.config.slice(offset, offset + length);
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

  /**
   * Ends the session at once (never waits: the back-end sees end-of-file now), the watch and the
   * eventfds (closed once no poll is out on them); releases this transport's hold on the arena.
   * Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // A driver still on it hears at once (its requests settle now, not at the watchdog's bound).
    const closedError = new DeviceError('E_CLOSED', `${this.address}: the transport was closed under the device`, 'close the driver, not its transport');
    for (const l of [...this.lostListeners]) l(closedError);
    this.session?.channel.close();
    this.session = null;
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

/** Resolves with p's value, or with undefined once `ms` passed (p's rejection is passed on). */
async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

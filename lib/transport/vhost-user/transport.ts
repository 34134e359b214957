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
// The session, the messages in flight and the reset's renewal are the link's (link.ts).
//
// A back-end that hangs up, breaks the protocol or stops answering ends the session: readStatus()
// shows DEVICE_NEEDS_RESET and onLost listeners hear the typed error (VirtioDevice then fails the
// queues' pending requests with it).
//
// Stop/state: the 'backend' facility (state.ts). Device configuration: the copy GET_CONFIG gave at
// the handshake (raw reads; no writes: VHOST_USER_SET_CONFIG is not implemented).

import { Feature, Status, bit, hasFeature } from '../../spec/index.js';
import { DeviceError, UsageError, isUvirtioError, type UvirtioError } from '../../errors.js';
import { optionsObject, type OptionKeys } from '../../util/options.js';
import * as libc from '../../sys/libc.js';
import type { ConfigWidth, QueueSetup, StateFacility, VirtioTransport } from '../types.js';
import { MemfdArena } from './arena.js';
import { Link } from './link.js';
import { F_PROTOCOL_FEATURES, Payload, ProtocolFeature, Req, deviceFeatureBits } from './protocol.js';
import { BackendFacility, type StopObservation } from './state.js';
import { initialBase, startMessages, type RingConf } from './rings.js';
import { openSession, type Session } from './session.js';
import { CallVectors, Watcher, type Watched } from './watcher.js';

export type { StopObservation } from './state.js';

/**
 * How {@link VhostUserTransport.open} connects: the device type the back-end serves, the shared
 * memory arena (new or another transport's), and the timeouts (ms) for replies and ring drains.
 */
export interface VhostUserOptions {
  /** Virtio device type the back-end serves (vhost-user does not say): default 2 (blk). */
  deviceType?: number;
  /** Memory to share with an already open vhost-user transport (a migration target). */
  arena?: MemfdArena;
  /** Size of a new arena in bytes (default 64 MiB). */
  arenaBytes?: number;
  /** Bound on the connect and on each reply from the back-end (default 5000 ms). */
  replyTimeoutMs?: number;
  /** The caller's bound on this open (connect and handshake), in ms; the smaller of it and replyTimeoutMs applies (default: replyTimeoutMs). */
  openTimeoutMs?: number;
  /** Bound on the wait for a stopped ring's fetched requests to complete (default 5000 ms). */
  drainTimeoutMs?: number;
  /** The ring size offered as queueMaxSize (default 1024, libvhost-user's VIRTQUEUE_MAX_SIZE). */
  queueMaxSize?: number;
}
/** VhostUserOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const VHOST_USER_OPTION_KEYS: OptionKeys<VhostUserOptions> = {
  deviceType: true, arena: true, arenaBytes: true, replyTimeoutMs: true, openTimeoutMs: true, drainTimeoutMs: true, queueMaxSize: true,
};

/** Virtio bits never passed on: IOTLB messages are not implemented, so no IOMMU_PLATFORM. */
const HIDDEN_FEATURES = bit(Feature.ACCESS_PLATFORM);

/**
 * A {@link VirtioTransport} over vhost-user (QEMU docs/interop/vhost-user.rst): this process is the
 * front-end, a back-end process consumes the rings in a shared memfd arena. vhost-user has no
 * status register, so status transitions become messages (FEATURES_OK: SET_FEATURES; DRIVER_OK:
 * SET_MEM_TABLE and the ring messages), finished in flush(). A back-end that hangs up, breaks the
 * protocol or times out shows DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) and is reported to onLost
 * listeners with the typed error (DeviceError E_VHOST_LOST, E_VHOST_PROTOCOL; TimeoutError E_VHOST_TIMEOUT).
 * Stop/state: the 'backend' facility (GET_VRING_BASE / SET_VRING_BASE).
 */
export class VhostUserTransport implements VirtioTransport {
  readonly deviceType: number;
  readonly dma: MemfdArena;
  private readonly link: Link;
  private status = 0;
  private driverFeatures = 0n;
  private readonly queues = new Map<number, RingConf>();
  private readonly started = new Set<number>();
  private readonly kickFds = new Map<number, number>();
  private readonly callFds = new Map<number, number>();
  private readonly vectors = new CallVectors();
  private readonly watcher: Watcher;
  private readonly replyTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  private readonly backend: BackendFacility;
  private isClosed = false;

  private constructor(
    readonly address: string,
    /** Filesystem path of the back-end's UNIX socket. */
    readonly path: string,
    private readonly options: VhostUserOptions,
    session: Session,
  ) {
    this.deviceType = options.deviceType ?? 2;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 5000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5000;
    this.dma = options.arena ? options.arena.retain() : new MemfdArena(options.arenaBytes);
    this.link = new Link(address, path, this.deviceType, this.replyTimeoutMs, session);
    this.watcher = new Watcher(() => this.watched(), address);
    this.backend = new BackendFacility({
      address, drainTimeoutMs: this.drainTimeoutMs,
      ring: (q) => this.queues.get(q),
      running: (q) => this.started.has(q),
      stopped: (q) => this.started.delete(q),
      packed: () => this.packed(),
      channel: () => this.link.channel(),
    });
  }

  /** One entry per GET_VRING_BASE of the 'backend' stop (what the back-end did with requests in flight). */
  get stops(): readonly StopObservation[] {
    return this.backend.stops;
  }

  /** vhost-user has none of the proposal's state registers, and no SUSPEND. */
  stateFeatures(): readonly number[] {
    return [];
  }
  /** The 'backend' facility (GET_VRING_BASE / SET_VRING_BASE), whatever was negotiated. */
  stateFacilities(): readonly StateFacility[] {
    return [this.backend];
  }

  /**
   * Connects and learns what the back-end offers, bounded by the reply timeout (and by
   * openTimeoutMs when smaller). Rejects with E_VHOST_UNREACHABLE (nothing listens), E_VHOST_BUSY
   * (it serves another front-end), E_VHOST_TIMEOUT (no answer in time; its message says when the
   * back-end's process is stopped), E_VHOST_PROTOCOL, E_VHOST_LOST, E_VHOST_NOT_SOCKET; with
   * E_INVALID_ARGUMENT, before connecting, for options that are not an object or have a key
   * VhostUserOptions does not.
   */
  static async open(address: string, path: string, options: VhostUserOptions = {}): Promise<VhostUserTransport> {
    options = optionsObject(options, 'VhostUserTransport.open options', VHOST_USER_OPTION_KEYS);
    const replyTimeoutMs = options.replyTimeoutMs ?? 5000;
    const session = await openSession(path, address, options.deviceType ?? 2, replyTimeoutMs, options.openTimeoutMs ?? replyTimeoutMs);
    try {
      return new VhostUserTransport(address, path, options, session);
    } catch (e) {
      session.channel.close();
      throw e;
    }
  }

  get numQueues(): number {
    return this.link.info.numQueues;
  }
  get configLength(): number {
    return this.link.info.config.length;
  }
  /** The protocol features the back-end offered, and those both sides agreed. */
  get offeredProtocolFeatures(): bigint {
    return this.link.info.offeredProtocolFeatures;
  }
  /**
   * The vhost-user protocol features in use: the back-end's offer (GET_PROTOCOL_FEATURES) masked by
   * those this front-end implements, as sent with SET_PROTOCOL_FEATURES; 0n without
   * VHOST_USER_F_PROTOCOL_FEATURES. Bit n is 1n << n.
   */
  get protocolFeatures(): bigint {
    return this.link.info.protocolFeatures;
  }

  // ---- the link (link.ts) ----

  /** Called once when the session dies under us (hang-up, broken protocol, no answer in time). */
  onLost(listener: (e: UvirtioError) => void): () => void {
    return this.link.onLost(listener);
  }

  /**
   * Waits until the back-end has answered every message sent so far, bounded by timeoutMs (and
   * each answer by the reply timeout). Rejects with the first failure.
   */
  flush(timeoutMs: number): Promise<void> {
    return this.link.flush(timeoutMs);
  }

  /**
   * Ends a session that set anything (started rings drained and stopped first, bounded by
   * timeoutMs) and opens a fresh one, so deviceFeatures(), numQueues and the configuration are
   * known afterwards. A failed reconnect does not reject — the device is reset either way, and
   * closing a device whose back-end died must not throw — it is kept and surfaces where the
   * back-end is needed next (the flush after FEATURES_OK); the next reset() tries again.
   */
  async reset(timeoutMs: number): Promise<void> {
    const started = [...this.started].map((q) => [q, this.queues.get(q)!] as const);
    const packed = this.packed();
    this.forgetDevice();
    await this.link.renew(started, packed, timeoutMs);
  }

  /** What a reset clears on this side: status, features, rings. */
  private forgetDevice(): void {
    this.status = 0;
    this.driverFeatures = 0n;
    this.queues.clear();
    this.started.clear();
    this.watcher.refresh();
  }

  // ---- status (kept by the front-end: there is no vhost-user message for it) ----

  readStatus(): number {
    return this.status | (this.link.failed ? Status.DEVICE_NEEDS_RESET : 0);
  }

  writeStatus(status: number): void {
    if (status === 0) {
      // A reset without waiting: the session ends now; the next reset() opens a fresh one.
      this.link.dropNow();
      this.forgetDevice();
      return;
    }
    const added = status & ~this.status;
    this.status = status & ~Status.DEVICE_NEEDS_RESET;
    if (added & Status.FEATURES_OK) this.setFeatures();
    if (added & Status.DRIVER_OK) this.start();
  }

  /** What the back-end offered at the last handshake (with no session open, the flush after FEATURES_OK says why). */
  deviceFeatures(): bigint {
    return deviceFeatureBits(this.link.info.features) & ~HIDDEN_FEATURES;
  }

  writeDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }

  /** SET_FEATURES; FEATURES_OK is cleared when the features are not a subset of the offer or the back-end refuses them. */
  private setFeatures(): void {
    if ((this.driverFeatures & ~(deviceFeatureBits(this.link.info.features) & ~HIDDEN_FEATURES)) !== 0n) {
      this.status &= ~Status.FEATURES_OK;
      return;
    }
    const withProtocol = this.driverFeatures | (this.link.info.features & bit(F_PROTOCOL_FEATURES));
    this.link.track(this.link.setNow(Req.SET_FEATURES, Payload.u64(withProtocol)).catch((e: unknown) => {
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
    const vector = this.vectors.accept(setup.vector);
    this.queues.set(q, {
      size: setup.size, desc: setup.addresses.desc, driver: setup.addresses.driver, device: setup.addresses.device,
      vector, base: initialBase(this.packed()), enabled: false, ...(setup.ring ? { ring: setup.ring } : {}),
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
    // Once this transport is closed (or the queue re-programmed) the fd number may belong to
    // something else: refuse instead of writing 8 bytes into it.
    return () => {
      if (this.isClosed || this.kickFds.get(q) !== fd) throw new UsageError('E_CLOSED', `${this.address}: queue ${q}'s kick eventfd is closed`, 'open the device again');
      libc.eventfdSignal(fd);
    };
  }

  /** DRIVER_OK: share the memory, then start every enabled ring. */
  private start(): void {
    const a = this.dma;
    this.link.set(Req.SET_MEM_TABLE, Payload.memTable([{ guest: a.guestBase, size: BigInt(a.size), user: a.userBase, offset: 0n }]), [a.fd]);
    for (const [q, conf] of this.queues) if (conf.enabled) this.startQueue(q, conf);
  }

  private startQueue(q: number, conf: RingConf): void {
    if (conf.used !== undefined) conf.ring?.setUsedIdx(conf.used);
    const enable = hasFeature(this.link.info.features, F_PROTOCOL_FEATURES);
    for (const [request, payload, fds] of startMessages(q, conf, this.dma, this.kickFds.get(q)!, this.callFds.get(q), enable)) {
      this.link.set(request, payload, fds);
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
    if (this.isClosed) return [];
    return this.vectors.watched([...this.queues].map(([q, conf]) => ({ fd: this.callFds.get(q), vector: conf.vector })));
  }

  enableInterrupts(vectorsWanted: number, handler: (vector: number) => void): number {
    const vectors = this.vectors.enable(vectorsWanted, 1 + this.numQueues, handler);
    this.watcher.refresh();
    return vectors;
  }
  /** Vector 0 (configuration changes) is accepted; it never fires (no SLAVE_REQ channel). */
  setConfigVector(vector: number): number {
    return this.vectors.accept(vector);
  }
  disableInterrupts(): void {
    this.vectors.disable();
    this.watcher.refresh();
  }

  // ---- device configuration: GET_CONFIG at each handshake (changes would come on SLAVE_REQ, not negotiated) ----

  /** Why the configuration is shorter than the device type's layout: without VHOST_USER_PROTOCOL_F_CONFIG there is none. */
  get configMissingHint(): string {
    const offered = ((this.link.info.offeredProtocolFeatures >> BigInt(ProtocolFeature.CONFIG)) & 1n) === 1n;
    return offered
      ? 'the back-end answered VHOST_USER_GET_CONFIG with fewer bytes than the device type defines; check the device type (vhost-user:PATH?type=blk|net)'
      : 'the back-end does not offer VHOST_USER_PROTOCOL_F_CONFIG, so it gives the front-end no device configuration; use a back-end that offers it (qemu-storage-daemon\'s vhost-user-blk export does)';
  }

  /** One raw read of the configuration GET_CONFIG returned. Throws E_CAP_MISSING beyond it (no VHOST_USER_PROTOCOL_F_CONFIG). */
  readConfig(offset: number, width: ConfigWidth): number {
    const config = this.link.info.config;
    if (offset < 0 || offset + width > config.length) {
      throw new DeviceError('E_CAP_MISSING', `${this.address}: device configuration bytes ${offset}..${offset + width - 1} are not available (the back-end gave ${config.length})`,
        this.configMissingHint);
    }
    const v = new DataView(config.buffer, config.byteOffset + offset, width);
    return width === 1 ? v.getUint8(0) : width === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
  }
  /** The configuration is the handshake's copy: it never changes under a read. */
  configGeneration(): number {
    return 0;
  }

  /**
   * Ends the session at once (never waits: the back-end sees end-of-file now), the watch and the
   * eventfds; releases this transport's hold on the arena.
   * Idempotent.
   */
  /** True once close() ran (see VirtioTransport.closed). */
  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    // A driver still on it hears at once (its requests settle now, not at the watchdog's bound).
    this.link.close(new DeviceError('E_CLOSED', `${this.address}: the transport was closed under the device`, 'close the driver, not its transport'));
    this.vectors.disable();
    const fds = [...this.kickFds.values(), ...this.callFds.values()];
    this.kickFds.clear();
    this.callFds.clear();
    this.watcher.stop(); // it watches duplicates: ours can be closed now
    fds.forEach((fd) => libc.close(fd));
    this.dma.close();
  }
}

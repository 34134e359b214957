// VirtioTransport over vhost-vdpa (/dev/vhost-vdpa-N, include/uapi/linux/vhost.h "VHOST_VDPA
// specific defines", drivers/vhost/vdpa.c): a vDPA device — a SmartNIC's virtqueue engine, or the
// kernel's vdpa_sim — driven from user space through its vhost character device.
//   open        check the path (device.ts), open O_RDWR, VHOST_SET_OWNER, then learn the device:
//               GET_DEVICE_ID, GET_VQS_COUNT, GET_CONFIG_SIZE, GET_IOVA_RANGE; backend features:
//               GET_BACKEND_FEATURES, SET_BACKEND_FEATURES with what is offered of IOTLB_MSG_V2,
//               IOTLB_BATCH, SUSPEND, RESUME and IOTLB_PERSIST (IOTLB_MSG_V2 is required)
//   memory      one memfd arena (arena.ts over vhost-user/arena.ts, shared MAP_SHARED memory, which the kernel's
//               use_va mapping needs: drivers/vhost/vdpa.c vhost_vdpa_va_map maps only shared
//               file-backed VMAs) mapped into the device's IOTLB with one VHOST_IOTLB_UPDATE
//               message (in BATCH_BEGIN/END when offered) at IOVA = the arena's guest base; a
//               migration target maps the same arena through its own IOTLB
//   status      VHOST_VDPA_GET/SET_STATUS; FEATURES_OK first sends VHOST_SET_FEATURES (a refusal
//               leaves FEATURES_OK clear, as virtio 1.2 §3.1.1 step 6 expects); reset = status 0,
//               then (without IOTLB_PERSIST) the arena mapped again: the parent's reset may drop it
//   rings       SET_VRING_NUM / ADDR (IOVAs) / BASE / KICK / CALL, then SET_VRING_ENABLE; DRIVER_OK
//               is followed by one kick per enabled ring (a restored ring's unfetched buffers)
//   interrupts  each queue's call eventfd, watched on the event loop (vhost-user/watcher.ts);
//               with none wanted, the driver polls the used rings
//   kick        a write to the queue's kick eventfd (vhost polls it and calls the parent's kick_vq)
// Stop/state: the 'backend' facility of state.ts (SUSPEND + GET/SET_VRING_BASE).

import { Feature, Status, hasFeature } from '../../spec/index.js';
import { DeviceError, DmaError, TimeoutError, UsageError } from '../../errors.js';
import { Errno, SysError } from '../../sys/errno.js';
import * as libc from '../../sys/libc.js';
import { backoff } from '../../util/backoff.js';
import { optionsObject, type OptionKeys } from '../../util/options.js';
import type { ConfigWidth, QueueSetup, SplitRingIndices, StateFacility, VirtioTransport, VqState } from '../types.js';
import type { MemfdArena } from '../vhost-user/arena.js';
import { VdpaArena } from './arena.js';
import { CallVectors, Watcher, type Watched } from '../vhost-user/watcher.js';
import { VdpaFd } from './device.js';
import { VdpaSuspendFacility, type VdpaStopObservation } from './state.js';
import { BackendFeature, IotlbAccess, IotlbType, backendFeaturesToAsk, encodeVringBase } from './uapi.js';

/** How {@link VhostVdpaTransport.open} sets the device up. */
export interface VhostVdpaOptions {
  /** Memory to share with an already open vhost-vdpa transport (a migration target maps the same arena). */
  arena?: MemfdArena;
  /** Size of a new arena in bytes (default 64 MiB). */
  arenaBytes?: number;
  /** Do not ask for VHOST_BACKEND_F_SUSPEND even if offered (to see how a parent without it is refused). */
  noSuspend?: boolean;
}
/** VhostVdpaOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const VHOST_VDPA_OPTION_KEYS: OptionKeys<VhostVdpaOptions> = { arena: true, arenaBytes: true, noSuspend: true };

/** One configured ring. */
interface Ring {
  size: number;
  vector: number;
  enabled: boolean;
  ring?: SplitRingIndices;
}

const bitOf = (n: number): bigint => 1n << BigInt(n);

/**
 * A {@link VirtioTransport} over a /dev/vhost-vdpa-N character device (see the top of this file).
 * Errors: DeviceError E_NO_DEVICE / E_NOT_VIRTIO / E_DEVICE_IN_USE (open), DmaError E_VDPA_IOTLB
 * (the IOTLB refused the arena), TimeoutError E_RESET_TIMEOUT, SysError E_SYSCALL naming the request.
 */
export class VhostVdpaTransport implements VirtioTransport {
  readonly deviceType: number;
  readonly dma: MemfdArena;
  readonly numQueues: number;
  readonly configLength: number;
  /** The backend features the device offered (VHOST_GET_BACKEND_FEATURES); bit n (uapi.ts BackendFeature) is 1n << n. */
  readonly offeredBackendFeatures: bigint;
  /** The backend features set (VHOST_SET_BACKEND_FEATURES): what was offered of IOTLB_MSG_V2, IOTLB_BATCH, SUSPEND, RESUME, IOTLB_PERSIST. */
  readonly backendFeatures: bigint;
  /** The IOVAs the device can map (VHOST_VDPA_GET_IOVA_RANGE), inclusive. */
  readonly iovaRange: {
    /** First mappable IOVA. */
    first: bigint;
    /** Last mappable IOVA (inclusive). */
    last: bigint;
  };
  private driverFeatures = 0n;
  private readonly rings = new Map<number, Ring>();
  private readonly kickFds = new Map<number, number>();
  private readonly callFds = new Map<number, number>();
  private readonly vectors = new CallVectors();
  /** Made last in the constructor: a device refused at open leaves no wake-up eventfd behind. */
  private readonly watcher: Watcher;
  private readonly facility: VdpaSuspendFacility;
  private isClosed = false;

  private constructor(readonly address: string, private readonly dev: VdpaFd, options: VhostVdpaOptions) {
    this.deviceType = dev.deviceId();
    this.numQueues = dev.vqsCount();
    // virtio-pci stops at 65535 queues; a count beyond any device's is a bad answer, not a plan.
    if (this.numQueues < 1 || this.numQueues > 0xffff) {
      throw new DeviceError('E_DEVICE_BAD_REPLY', `${address}: VHOST_VDPA_GET_VQS_COUNT says ${this.numQueues} virtqueues`, 'a device has 1 to 65535; the parent driver is misbehaving');
    }
    this.configLength = dev.configSize();
    this.iovaRange = dev.iovaRange();
    this.offeredBackendFeatures = dev.backendFeatures();
    if ((this.offeredBackendFeatures & bitOf(BackendFeature.IOTLB_MSG_V2)) === 0n) {
      throw new DeviceError('E_CAP_MISSING', `${address}: the device does not offer VHOST_BACKEND_F_IOTLB_MSG_V2`, 'a Linux kernel ≥ 5.8 offers it on every vhost-vdpa device');
    }
    this.backendFeatures = backendFeaturesToAsk(this.offeredBackendFeatures, options.noSuspend ? [BackendFeature.SUSPEND] : []);
    dev.setBackendFeatures(this.backendFeatures);
    this.dma = options.arena ? options.arena.retain() : new VdpaArena(options.arenaBytes);
    try {
      this.mapArena();
    } catch (e) {
      this.dma.close();
      throw e;
    }
    this.facility = new VdpaSuspendFacility({
      address, fd: () => this.dev,
      canSuspend: this.has(BackendFeature.SUSPEND), canResume: this.has(BackendFeature.RESUME),
      packed: () => this.packed(), ring: (q) => this.rings.get(q)?.ring,
      setBase: (q, s) => this.setBase(q, s), kickAll: () => this.kickEnabled(),
    });
    this.watcher = new Watcher(() => this.watched(), address);
  }

  /**
   * Opens the vhost-vdpa device at `path` (or adopts the open `fd`) and maps its DMA memory.
   * Throws E_NO_DEVICE, E_NOT_VIRTIO (not a vhost-vdpa device), E_DEVICE_IN_USE, E_PERMISSION,
   * E_INVALID_ARGUMENT (a bad fd; options that are not an object or have a key VhostVdpaOptions
   * does not, refused before the device is opened), E_CAP_MISSING (no IOTLB_MSG_V2), E_VDPA_IOTLB (the mapping was refused).
   */
  static open(address: string, target: string | { fd: number }, options: VhostVdpaOptions = {}): VhostVdpaTransport {
    options = optionsObject(options, 'VhostVdpaTransport.open options', VHOST_VDPA_OPTION_KEYS);
    const dev = typeof target === 'string' ? VdpaFd.open(address, target) : VdpaFd.adopt(address, target.fd);
    try {
      return new VhostVdpaTransport(address, dev, options);
    } catch (e) {
      dev.close();
      throw e;
    }
  }

  private has(f: number): boolean {
    return (this.backendFeatures & bitOf(f)) !== 0n;
  }

  /** The arena in the device's IOTLB at IOVA = its guest base (drivers/vhost/vdpa.c vhost_vdpa_process_iotlb_msg). */
  private mapArena(): void {
    const a = this.dma;
    const first = a.guestBase;
    const last = a.guestBase + BigInt(a.size) - 1n;
    if (first < this.iovaRange.first || last > this.iovaRange.last) {
      throw new DmaError('E_VDPA_IOTLB', `${this.address}: the device maps IOVAs 0x${this.iovaRange.first.toString(16)}–0x${this.iovaRange.last.toString(16)}, not the arena's 0x${first.toString(16)}–0x${last.toString(16)}`,
        'the device cannot reach this transport\'s memory; a smaller arena (?arena=MiB) may fit');
    }
    const batch = this.has(BackendFeature.IOTLB_BATCH);
    if (batch) this.dev.iotlb({ type: IotlbType.BATCH_BEGIN });
    this.dev.iotlb({ type: IotlbType.UPDATE, iova: first, size: BigInt(a.size), uaddr: a.userBase, perm: IotlbAccess.RW });
    if (batch) this.dev.iotlb({ type: IotlbType.BATCH_END });
  }

  /** One entry per stop: how long SUSPEND and the drain after it took. */
  get lastStop(): VdpaStopObservation | null {
    return this.facility.lastStop;
  }

  /** vhost-vdpa has none of the proposal's state registers. */
  stateFeatures(): readonly number[] {
    return [];
  }
  /** The 'backend' facility (SUSPEND + GET/SET_VRING_BASE); its stop refuses with E_STATE_UNSUPPORTED without SUSPEND. */
  stateFacilities(): readonly StateFacility[] {
    return [this.facility];
  }

  // ---- status and features ----

  readStatus(): number {
    if (this.isClosed) return 0;
    return this.dev.status();
  }

  writeStatus(status: number): void {
    if (status === 0) {
      this.dev.setStatus(0);
      this.forget();
      return;
    }
    const before = this.dev.status();
    let s = status & 0xff;
    if (s & ~before & Status.FEATURES_OK) {
      try {
        this.dev.setFeatures(this.driverFeatures);
      } catch (e) {
        // The parent cannot work with these features (vdpa_sim: without ACCESS_PLATFORM): FEATURES_OK stays clear.
        if (e instanceof SysError && e.errno === Errno.EINVAL) s &= ~Status.FEATURES_OK;
        else throw e;
      }
    }
    this.dev.setStatus(s);
    if (s & ~before & Status.DRIVER_OK) this.kickEnabled();
  }

  /** Status 0, then waits (bounded) until the device reads back 0 (virtio 1.2 §2.4). Rejects E_RESET_TIMEOUT. */
  async reset(timeoutMs: number): Promise<void> {
    this.dev.setStatus(0);
    this.forget();
    const deadline = Date.now() + timeoutMs;
    for (let spins = 0; this.dev.status() !== 0; spins++) {
      if (Date.now() > deadline) throw new TimeoutError('E_RESET_TIMEOUT', `${this.address}: device_status did not read 0 within ${timeoutMs} ms of the reset`,
        'the device did not finish its reset in time: raise resetTimeoutMs, or check the vDPA parent device (dmesg)');
      await backoff(spins);
    }
    if (!this.has(BackendFeature.IOTLB_PERSIST)) {
      // The parent may have dropped its mappings with the reset (VDPA_RESET_F_CLEAN_MAP); vhost's
      // own IOTLB still holds the range, so it is invalidated and updated again.
      this.dev.iotlb({ type: IotlbType.INVALIDATE, iova: this.dma.guestBase, size: BigInt(this.dma.size) });
      this.mapArena();
    }
  }

  private forget(): void {
    this.driverFeatures = 0n;
    this.rings.clear();
    this.watcher.refresh();
  }

  deviceFeatures(): bigint {
    return this.dev.features();
  }
  writeDriverFeatures(features: bigint): void {
    this.driverFeatures = features;
  }
  private packed(): boolean {
    return hasFeature(this.driverFeatures, Feature.RING_PACKED);
  }

  // ---- queues ----

  /**
   * VHOST_VDPA_GET_VRING_NUM for an existing queue, rounded down to a power of two (a split ring's
   * size must be one, virtio 1.2 §2.7; at most 32768); 0 beyond GET_VQS_COUNT or when the device says 0.
   */
  queueMaxSize(q: number): number {
    if (!Number.isInteger(q) || q < 0 || q >= this.numQueues) return 0;
    const max = Math.min(this.dev.vringNumMax(), 32768);
    return max < 1 ? 0 : 2 ** Math.floor(Math.log2(max));
  }

  configureQueue(q: number, setup: QueueSetup): number {
    if (this.queueMaxSize(q) === 0) {
      throw new UsageError('E_QUEUE_UNAVAILABLE', `${this.address}: queue ${q} does not exist (the device has ${this.numQueues})`);
    }
    for (const m of [this.kickFds, this.callFds]) if (!m.has(q)) m.set(q, libc.eventfd());
    const vector = this.vectors.accept(setup.vector);
    const d = this.dev;
    d.setVringNum(q, setup.size);
    d.setVringAddr(q, setup.addresses);
    d.setVringBase(q, encodeVringBase(this.packed() ? { avail: 0x8000, used: 0x8000 } : { avail: 0, used: 0 }, this.packed()));
    d.setVringFile('kick', q, this.kickFds.get(q)!);
    d.setVringFile('call', q, this.callFds.get(q)!);
    this.rings.set(q, { size: setup.size, vector, enabled: false, ...(setup.ring ? { ring: setup.ring } : {}) });
    this.watcher.refresh();
    return vector;
  }

  /** SET_VRING_BASE for a configured ring (the facility's restore); a split ring's used->idx is written to match. */
  private setBase(q: number, s: VqState): void {
    const r = this.rings.get(q);
    if (!r) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    this.dev.setVringBase(q, encodeVringBase(s, this.packed()));
    if (!this.packed() && r.ring && r.ring.usedIdx() !== (s.used & 0xffff)) r.ring.setUsedIdx(s.used & 0xffff);
  }

  enableQueue(q: number): void {
    const r = this.rings.get(q);
    if (!r) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    this.dev.setVringEnable(q, true);
    r.enabled = true;
  }

  notifier(q: number): () => void {
    const fd = this.kickFds.get(q);
    if (fd === undefined) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    // Once this transport is closed (or the queue re-programmed) the fd number may belong to
    // something else: refuse instead of writing 8 bytes into it.
    return () => {
      if (this.isClosed || this.kickFds.get(q) !== fd) throw new UsageError('E_CLOSED', `${this.address}: queue ${q}'s kick eventfd is closed`, 'open the device again');
      libc.eventfdSignal(fd);
    };
  }

  private kickEnabled(): void {
    for (const [q, r] of this.rings) if (r.enabled) libc.eventfdSignal(this.kickFds.get(q)!);
  }

  // ---- interrupts: each queue's call eventfd is its vector ----

  private watched(): Watched[] {
    if (this.isClosed) return [];
    return this.vectors.watched([...this.rings].map(([q, r]) => ({ fd: this.callFds.get(q), vector: r.vector })));
  }

  enableInterrupts(vectorsWanted: number, handler: (vector: number) => void): number {
    const vectors = this.vectors.enable(vectorsWanted, 1 + this.numQueues, handler);
    this.watcher.refresh();
    return vectors;
  }
  /** Vector 0 (configuration changes) is accepted; it is not wired (no VHOST_VDPA_SET_CONFIG_CALL yet), so it never fires. */
  setConfigVector(vector: number): number {
    return this.vectors.accept(vector);
  }
  disableInterrupts(): void {
    this.vectors.disable();
    this.watcher.refresh();
  }

  // ---- device configuration (VHOST_VDPA_GET/SET_CONFIG) ----

  private checkConfig(offset: number, width: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + width > this.configLength || ![1, 2, 4].includes(width)) {
      throw new UsageError('E_INVALID_ARGUMENT', `${this.address}: device configuration access of ${width} byte(s) at ${offset} is outside its ${this.configLength} bytes`);
    }
  }
  readConfig(offset: number, width: ConfigWidth): number {
    this.checkConfig(offset, width);
    const b = this.dev.readConfig(offset, width);
    const v = new DataView(b.buffer, b.byteOffset, width);
    return width === 1 ? v.getUint8(0) : width === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
  }
  writeConfig(offset: number, width: ConfigWidth, value: number): void {
    this.checkConfig(offset, width);
    const b = new Uint8Array(width);
    const v = new DataView(b.buffer);
    if (width === 1) v.setUint8(0, value);
    else if (width === 2) v.setUint16(0, value, true);
    else v.setUint32(0, value >>> 0, true);
    this.dev.writeConfig(offset, b);
  }
  /** vhost-vdpa has no config_generation request: each GET_CONFIG is one copy under the parent's lock. */
  configGeneration(): number {
    return 0;
  }

  /** Closes the device fd (the kernel resets the device and drops its IOTLB), the eventfds, and this transport's hold on the arena. Idempotent. */
  /** True once close() ran (see VirtioTransport.closed). */
  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.vectors.disable();
    this.dev.close();
    const fds = [...this.kickFds.values(), ...this.callFds.values()];
    this.kickFds.clear();
    this.callFds.clear();
    this.watcher.stop(); // it watches duplicates: ours can be closed now
    fds.forEach((fd) => libc.close(fd));
    this.dma.close();
  }
}


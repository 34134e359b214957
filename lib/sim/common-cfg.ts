// struct virtio_pci_common_cfg as a strict device implements it (virtio 1.2 §4.1.4.3): feature
// select windows, the device status machine (§2.1, §3.1.1), per-queue registers behind
// queue_select, and MSI-X vector mapping (§4.1.5.1.2). Every field has one access width; any other
// access, or one outside the structure, is ignored and reads 0.
//
// With VIRTIO_F_RING_STATE (PROVISIONAL, SPEC-NOTES §1) it adds the proposal's STOP status bit and
// the per-queue state registers (queue-state.ts); with DEVICE_STATE, the mailbox (state-mailbox.ts);
// with VIRTIO_F_SUSPEND, the virtio 1.4 SUSPEND bit (§2.1). Those registers read 0 and ignore
// writes unless their feature was negotiated.

import { CommonCfg, Feature, Status, VIRTIO_MSI_NO_VECTOR, bit, hasFeature } from '../virtio/constants.js';
import type { SimQueue } from './queue.js';
import { readStateRegisters, writeAvailState, writeUsedState } from './queue-state.js';
import type { StateMailbox } from './state-mailbox.js';

/**
 * Where the device is between running and quiet. STOP (proposal) and SUSPEND (1.4) are each
 * requested by a status write and shown later, once the device has quietened ('stopping' →
 * 'stopped', 'suspending' → 'suspended').
 */
export type QuietPhase = 'running' | 'stopping' | 'stopped' | 'suspending' | 'suspended';

/** What the common configuration needs from the device behind it. */
export interface CommonConfigHost {
  readonly offeredFeatures: bigint;
  readonly queues: readonly SimQueue[];
  readonly msixTableSize: number;
  readonly configGeneration: number;
  /** 0 was written to device_status: reset the whole device (this structure included). */
  reset(): void;
  /** FEATURES_OK was accepted with these features. */
  featuresAccepted(features: bigint): void;
  /** DRIVER_OK was set: the device is live. */
  driverOk(): void;
  /** The driver wrote 1 to queue_enable for a configured queue. */
  enableQueue(queue: SimQueue): void;
  /** Bytes of the structure the capability exposes: accesses beyond it are ignored. */
  readonly commonLength: number;
  readonly phase: QuietPhase;
  /** The driver asked a running device to STOP or SUSPEND: stop fetching now, show the bit later. */
  quiesce(kind: 'stop' | 'suspend'): void;
  /** The driver wrote DRIVER_OK with SUSPEND clear to a suspended device (already shown in status). */
  resume(): void;
  readonly mailbox: StateMailbox;
}

const C = CommonCfg;
const WIDTH: Readonly<Record<number, 1 | 2 | 4>> = {
  [C.DEVICE_FEATURE_SELECT]: 4, [C.DEVICE_FEATURE]: 4, [C.DRIVER_FEATURE_SELECT]: 4, [C.DRIVER_FEATURE]: 4,
  [C.CONFIG_MSIX_VECTOR]: 2, [C.NUM_QUEUES]: 2, [C.DEVICE_STATUS]: 1, [C.CONFIG_GENERATION]: 1,
  [C.QUEUE_SELECT]: 2, [C.QUEUE_SIZE]: 2, [C.QUEUE_MSIX_VECTOR]: 2, [C.QUEUE_ENABLE]: 2, [C.QUEUE_NOTIFY_OFF]: 2,
  // 64-bit addresses: two aligned 32-bit halves (§4.1.3.1).
  [C.QUEUE_DESC]: 4, [C.QUEUE_DESC + 4]: 4, [C.QUEUE_DRIVER]: 4, [C.QUEUE_DRIVER + 4]: 4,
  [C.QUEUE_DEVICE]: 4, [C.QUEUE_DEVICE + 4]: 4,
  // Present but unused: their features (NOTIF_CONFIG_DATA, RING_RESET, ADMIN_VQ) are never offered.
  [C.QUEUE_NOTIF_CONFIG_DATA]: 2, [C.QUEUE_RESET]: 2, [C.ADMIN_QUEUE_INDEX]: 2, [C.ADMIN_QUEUE_NUM]: 2,
  // PROVISIONAL (RING_STATE, DEVICE_STATE): SPEC-NOTES §1; the mailbox address in two halves.
  [C.QUEUE_AVAIL_STATE]: 2, [C.QUEUE_USED_STATE]: 2,
  [C.DEVICE_STATE_LEN]: 4, [C.DEVICE_STATE_ADDR]: 4, [C.DEVICE_STATE_ADDR + 4]: 4, [C.DEVICE_STATE_CMD]: 2,
};
const MAILBOX_REGISTERS: readonly number[] = [C.DEVICE_STATE_LEN, C.DEVICE_STATE_ADDR, C.DEVICE_STATE_ADDR + 4, C.DEVICE_STATE_CMD];

/** Status bits a driver may set; DEVICE_NEEDS_RESET belongs to the device. */
const DRIVER_STATUS_BITS = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK | Status.FAILED;
const LOW32 = 0xffff_ffffn;

export class CommonConfig {
  status = 0;
  /** Features fixed at FEATURES_OK; 0n before. */
  negotiated = 0n;
  configMsixVector = VIRTIO_MSI_NO_VECTOR;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  /** driver_feature as written, 32 bits per select value. */
  private driverFeatureWindows = new Map<number, number>();
  private queueSelect = 0;

  constructor(private readonly host: CommonConfigHost) {}

  reset(): void {
    this.status = 0;
    this.negotiated = 0n;
    this.configMsixVector = VIRTIO_MSI_NO_VECTOR;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeatureWindows = new Map();
    this.queueSelect = 0;
  }

  read(offset: number, width: number): number {
    if (!this.decodes(offset, width)) return 0;
    const q = this.selected();
    if (MAILBOX_REGISTERS.includes(offset)) return this.has(Feature.DEVICE_STATE) ? this.host.mailbox.read(offset) : 0;
    switch (offset) {
      case C.DEVICE_FEATURE_SELECT: return this.deviceFeatureSelect;
      case C.DEVICE_FEATURE: return Number((this.host.offeredFeatures >> BigInt(32 * this.deviceFeatureSelect)) & LOW32);
      case C.DRIVER_FEATURE_SELECT: return this.driverFeatureSelect;
      case C.DRIVER_FEATURE: return this.driverFeatureWindows.get(this.driverFeatureSelect) ?? 0;
      case C.CONFIG_MSIX_VECTOR: return this.configMsixVector;
      case C.NUM_QUEUES: return this.host.queues.length;
      case C.DEVICE_STATUS: return this.status;
      case C.CONFIG_GENERATION: return this.host.configGeneration;
      case C.QUEUE_SELECT: return this.queueSelect;
      // §4.1.4.3.1: queue_size reads 0 for a queue the device does not have.
      case C.QUEUE_SIZE: return q?.size ?? 0;
      case C.QUEUE_MSIX_VECTOR: return q?.msixVector ?? VIRTIO_MSI_NO_VECTOR;
      case C.QUEUE_ENABLE: return q?.enabled ? 1 : 0;
      case C.QUEUE_NOTIFY_OFF: return q?.index ?? 0;
      case C.QUEUE_DESC: return low(q?.desc);
      case C.QUEUE_DESC + 4: return high(q?.desc);
      case C.QUEUE_DRIVER: return low(q?.driver);
      case C.QUEUE_DRIVER + 4: return high(q?.driver);
      case C.QUEUE_DEVICE: return low(q?.device);
      case C.QUEUE_DEVICE + 4: return high(q?.device);
      case C.QUEUE_AVAIL_STATE: return q && this.has(Feature.RING_STATE) ? readStateRegisters(q, this.packed).avail : 0;
      case C.QUEUE_USED_STATE: return q && this.has(Feature.RING_STATE) ? readStateRegisters(q, this.packed).used : 0;
      default: return 0;
    }
  }

  write(offset: number, width: number, value: number): void {
    if (!this.decodes(offset, width)) return;
    const q = this.selected();
    if (MAILBOX_REGISTERS.includes(offset)) {
      if (this.has(Feature.DEVICE_STATE)) this.host.mailbox.write(offset, value);
      return;
    }
    switch (offset) {
      case C.DEVICE_FEATURE_SELECT: this.deviceFeatureSelect = value; return;
      case C.DRIVER_FEATURE_SELECT: this.driverFeatureSelect = value; return;
      case C.DRIVER_FEATURE:
        // §3.1.1: the feature set is fixed once FEATURES_OK is set.
        if (!(this.status & Status.FEATURES_OK)) this.driverFeatureWindows.set(this.driverFeatureSelect, value);
        return;
      case C.CONFIG_MSIX_VECTOR: this.configMsixVector = this.mapVector(value); return;
      case C.DEVICE_STATUS: this.writeStatus(value); return;
      case C.QUEUE_SELECT: this.queueSelect = value; return;
      case C.QUEUE_MSIX_VECTOR: if (q) q.msixVector = this.mapVector(value); return;
      case C.QUEUE_SIZE: if (q && this.configurable(q) && this.validSize(q, value)) q.size = value; return;
      // §4.1.4.3.2: the driver never writes 0 to queue_enable; the device ignores it.
      case C.QUEUE_ENABLE: if (q && value === 1 && this.configurable(q)) this.host.enableQueue(q); return;
      case C.QUEUE_DESC: case C.QUEUE_DESC + 4:
        if (q && this.configurable(q)) q.desc = setHalf(q.desc, offset - C.QUEUE_DESC, value);
        return;
      case C.QUEUE_DRIVER: case C.QUEUE_DRIVER + 4:
        if (q && this.configurable(q)) q.driver = setHalf(q.driver, offset - C.QUEUE_DRIVER, value);
        return;
      case C.QUEUE_DEVICE: case C.QUEUE_DEVICE + 4:
        if (q && this.configurable(q)) q.device = setHalf(q.device, offset - C.QUEUE_DEVICE, value);
        return;
      // The proposal: the driver writes the state during initialisation, after FEATURES_OK and
      // before DRIVER_OK — the window in which queue registers are programmed, queue disabled.
      case C.QUEUE_AVAIL_STATE:
        if (q && this.has(Feature.RING_STATE) && this.configurable(q)) writeAvailState(q, this.packed, value);
        return;
      case C.QUEUE_USED_STATE:
        if (q && this.has(Feature.RING_STATE) && this.configurable(q)) writeUsedState(q, this.packed, value);
        return;
      default: // read-only fields: device_feature, num_queues, config_generation, queue_notify_off, …
    }
  }

  /** Whether `feature` was accepted at FEATURES_OK. */
  has(feature: number): boolean {
    return hasFeature(this.negotiated, feature);
  }

  private get packed(): boolean {
    return this.has(Feature.RING_PACKED);
  }

  /** A field of the right width inside the structure the capability exposes. */
  private decodes(offset: number, width: number): boolean {
    return WIDTH[offset] === width && offset + width <= this.host.commonLength;
  }

  /** The features the driver has written so far, all select windows together. */
  private driverFeatures(): bigint {
    let features = 0n;
    for (const [select, value] of this.driverFeatureWindows) features |= BigInt(value >>> 0) << BigInt(32 * select);
    return features;
  }

  /**
   * §2.1.1: the driver never clears a bit (writing 0 resets) and never sets DEVICE_NEEDS_RESET.
   * §3.1.1: FEATURES_OK sticks only after DRIVER, for a subset of the offered features that
   * includes VERSION_1 (and, PROVISIONAL, DEVICE_STATE only with RING_STATE); DRIVER_OK only after
   * FEATURES_OK. A refused bit simply does not read back.
   * STOP and SUSPEND are requests to a running device (DRIVER_OK already set, neither pending); the
   * device shows them later (device.ts). STOP is one-way: no write clears it, only a reset.
   */
  private writeStatus(value: number): void {
    if (value === 0) {
      this.host.reset();
      return;
    }
    if (this.host.phase === 'suspended') {
      this.writeWhileSuspended(value);
      return;
    }
    const old = this.status;
    let added = value & DRIVER_STATUS_BITS & ~old;
    if (added & Status.FEATURES_OK) {
      const features = this.driverFeatures();
      const acceptable = (old & Status.DRIVER) !== 0
        && (features & ~this.host.offeredFeatures) === 0n
        && hasFeature(features, Feature.VERSION_1)
        && (!hasFeature(features, Feature.DEVICE_STATE) || hasFeature(features, Feature.RING_STATE));
      if (acceptable) {
        this.negotiated = features;
        this.host.featuresAccepted(features);
      } else {
        added &= ~Status.FEATURES_OK;
      }
    }
    if ((added & Status.DRIVER_OK) && !((old | added) & Status.FEATURES_OK)) added &= ~Status.DRIVER_OK;
    this.status = old | added;
    if (added & Status.DRIVER_OK) this.host.driverOk();
    const running = (old & Status.DRIVER_OK) !== 0 && this.host.phase === 'running';
    if (!running) return;
    if ((value & Status.STOP) && this.has(Feature.RING_STATE)) this.host.quiesce('stop');
    else if ((value & Status.SUSPEND) && this.has(Feature.SUSPEND)) this.host.quiesce('suspend');
  }

  /** virtio 1.4 §2.1 (SUSPEND): DRIVER_OK with SUSPEND clear resumes the device; FAILED may still be set. */
  private writeWhileSuspended(value: number): void {
    this.status |= value & Status.FAILED;
    if ((value & Status.DRIVER_OK) && !(value & Status.SUSPEND)) {
      this.status = (this.status & ~Status.SUSPEND) | Status.DRIVER_OK;
      this.host.resume();
    }
  }

  /** Queue registers are programmed after FEATURES_OK and before DRIVER_OK (§3.1.1 step 7), while disabled. */
  private configurable(q: SimQueue): boolean {
    const s = this.status;
    return !q.enabled && (s & Status.FEATURES_OK) !== 0 && (s & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === 0;
  }

  /** §4.1.4.3.2: non-zero, at most the maximum; a power of two unless RING_PACKED was negotiated. */
  private validSize(q: SimQueue, size: number): boolean {
    if (size < 1 || size > q.maxSize) return false;
    return (this.negotiated & bit(Feature.RING_PACKED)) !== 0n || (size & (size - 1)) === 0;
  }

  /** §4.1.5.1.2: a vector beyond the MSI-X table cannot be mapped; it reads back NO_VECTOR. */
  private mapVector(vector: number): number {
    return vector < this.host.msixTableSize ? vector : VIRTIO_MSI_NO_VECTOR;
  }

  private selected(): SimQueue | undefined {
    return this.host.queues[this.queueSelect];
  }
}

function low(v: bigint | undefined): number {
  return Number((v ?? 0n) & LOW32);
}
function high(v: bigint | undefined): number {
  return Number(((v ?? 0n) >> 32n) & LOW32);
}
function setHalf(v: bigint, half: number, value: number): bigint {
  const part = BigInt(value >>> 0);
  return half === 0 ? (v & ~LOW32) | part : (v & LOW32) | (part << 32n);
}

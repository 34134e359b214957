// struct virtio_pci_common_cfg as a strict device implements it (virtio 1.2 §4.1.4.3): feature
// select windows, the device status field (status.ts), per-queue registers behind queue_select,
// and MSI-X vector mapping (§4.1.5.1.2). Every field has one access width; any other access, or
// one outside the structure, is ignored and reads 0 (§4.1.3.1).
//
// With VIRTIO_F_RING_STATE (PROVISIONAL, docs/provisional-registers.md) it adds the proposal's STOP status bit and
// the per-queue state registers (queue-state.ts); with DEVICE_STATE, the mailbox (state-mailbox.ts);
// with VIRTIO_F_SUSPEND, the virtio 1.4 SUSPEND bit. Those registers read 0 and ignore writes
// unless their feature was negotiated.
//
// Each driver access the spec forbids is recorded (rules.ts) and has no effect: a field written
// outside its window keeps its value, a vector that cannot be mapped reads NO_VECTOR.

import { CommonCfg, Feature, Status, VIRTIO_MSI_NO_VECTOR, bit } from '../../spec/index.js';
import { RESERVED_FEATURE_BIT, type StickyFault } from './faults.js';
import type { SimQueue } from './queue.js';
import { lieAbout, readStateRegisters, writeAvailState, writeUsedState } from './queue-state.js';
import type { RuleId } from './rules.js';
import type { StateMailbox } from './state-mailbox.js';
import { DeviceStatus, type StatusHost } from './status.js';

export type { QuietPhase } from './status.js';

/** What the common configuration needs from the device behind it. */
export interface CommonConfigHost extends StatusHost {
  readonly queues: readonly SimQueue[];
  readonly msixTableSize: number;
  /** config_generation as the driver reads it (fault config-churn: a new one on every read). */
  readConfigGeneration(): number;
  /** The driver wrote 1 to queue_enable for a configured queue. */
  enableQueue(queue: SimQueue): void;
  /** Bytes of the structure the capability exposes: accesses beyond it are ignored. */
  readonly commonLength: number;
  readonly mailbox: StateMailbox;
  /** Fault state-lie: how far queue `q`'s state registers read off the truth (0: the truth). */
  stateLie(q: number): number;
  /** A driver broke an 'ignore' rule (rules.ts), on a queue or on the device. */
  violation(rule: RuleId, message: string, queue?: number): void;
  /** A sticky fault in force (faults.ts), for queue `q`. */
  sticky(kind: StickyFault, q?: number): boolean;
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
  // PROVISIONAL (RING_STATE, DEVICE_STATE): docs/provisional-registers.md; the mailbox address in two halves.
  [C.QUEUE_AVAIL_STATE]: 2, [C.QUEUE_USED_STATE]: 2,
  [C.DEVICE_STATE_LEN]: 4, [C.DEVICE_STATE_ADDR]: 4, [C.DEVICE_STATE_ADDR + 4]: 4, [C.DEVICE_STATE_CMD]: 2,
};
const MAILBOX_REGISTERS: readonly number[] = [C.DEVICE_STATE_LEN, C.DEVICE_STATE_ADDR, C.DEVICE_STATE_ADDR + 4, C.DEVICE_STATE_CMD];
/** §4.1.4.3.2: the driver never writes these (queue_notify_data is queue_notif_config_data). */
const READ_ONLY: readonly number[] = [C.DEVICE_FEATURE, C.NUM_QUEUES, C.CONFIG_GENERATION, C.QUEUE_NOTIFY_OFF, C.QUEUE_NOTIF_CONFIG_DATA];
const LOW32 = 0xffff_ffffn;
const QUEUE_FIELD_NAMES: Readonly<Record<number, string>> = {
  [C.QUEUE_SIZE]: 'queue_size', [C.QUEUE_ENABLE]: 'queue_enable', [C.QUEUE_DESC]: 'queue_desc', [C.QUEUE_DESC + 4]: 'queue_desc',
  [C.QUEUE_DRIVER]: 'queue_driver', [C.QUEUE_DRIVER + 4]: 'queue_driver', [C.QUEUE_DEVICE]: 'queue_device', [C.QUEUE_DEVICE + 4]: 'queue_device',
};

export class CommonConfig {
  private readonly status_: DeviceStatus;
  configMsixVector = VIRTIO_MSI_NO_VECTOR;
  private configVectorUnverified = false;
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  /** driver_feature as written, 32 bits per select value. */
  private driverFeatureWindows = new Map<number, number>();
  private queueSelect = 0;

  constructor(private readonly host: CommonConfigHost) {
    this.status_ = new DeviceStatus(host);
  }

  /** device_status as the device holds it (the device sets NEEDS_RESET, STOP and SUSPEND itself). */
  get status(): number {
    return this.status_.value;
  }
  set status(v: number) {
    this.status_.value = v;
  }

  /** Features fixed at FEATURES_OK; 0n before. */
  get negotiated(): bigint {
    return this.status_.negotiated;
  }

  /** device_feature as shown: the offer, plus the reserved bit of fault reserved-feature. */
  private shownFeatures(): bigint {
    return this.host.offeredFeatures | (this.host.sticky('reserved-feature') ? 1n << BigInt(RESERVED_FEATURE_BIT) : 0n);
  }

  reset(): void {
    this.status_.clear();
    this.configMsixVector = VIRTIO_MSI_NO_VECTOR;
    this.configVectorUnverified = false;
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
      case C.DEVICE_FEATURE: return Number((this.shownFeatures() >> BigInt(32 * this.deviceFeatureSelect)) & LOW32);
      case C.DRIVER_FEATURE_SELECT: return this.driverFeatureSelect;
      case C.DRIVER_FEATURE: return this.driverFeatureWindows.get(this.driverFeatureSelect) ?? 0;
      case C.CONFIG_MSIX_VECTOR:
        this.configVectorUnverified = false;
        return this.host.sticky('msix-vector-lost') ? 0 : this.configMsixVector;
      case C.NUM_QUEUES: return this.host.queues.length;
      case C.DEVICE_STATUS: return this.status_.read();
      case C.CONFIG_GENERATION: return this.host.readConfigGeneration();
      case C.QUEUE_SELECT: return this.queueSelect;
      // §4.1.4.3.1: queue_size reads 0 for a queue the device does not have.
      case C.QUEUE_SIZE: return q?.size ?? 0;
      case C.QUEUE_MSIX_VECTOR:
        if (q) q.vectorUnverified = false;
        if (q && this.host.sticky('msix-vector-lost', q.index)) return 0;
        return q?.msixVector ?? VIRTIO_MSI_NO_VECTOR;
      case C.QUEUE_ENABLE: return q?.enabled && !this.host.sticky('queue-enable-lost', q.index) ? 1 : 0;
      case C.QUEUE_NOTIFY_OFF: return q?.index ?? 0;
      case C.QUEUE_DESC: return low(q?.desc);
      case C.QUEUE_DESC + 4: return high(q?.desc);
      case C.QUEUE_DRIVER: return low(q?.driver);
      case C.QUEUE_DRIVER + 4: return high(q?.driver);
      case C.QUEUE_DEVICE: return low(q?.device);
      case C.QUEUE_DEVICE + 4: return high(q?.device);
      case C.QUEUE_AVAIL_STATE: return this.readState(q, 'avail');
      case C.QUEUE_USED_STATE: return this.readState(q, 'used');
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
    if (READ_ONLY.includes(offset)) {
      this.host.violation('read-only-register-write', `the driver wrote ${value} to read-only common configuration offset 0x${offset.toString(16)}`);
      return;
    }
    switch (offset) {
      case C.DEVICE_FEATURE_SELECT: this.deviceFeatureSelect = value; return;
      case C.DRIVER_FEATURE_SELECT: this.driverFeatureSelect = value; return;
      case C.DRIVER_FEATURE: this.writeDriverFeature(value); return;
      case C.CONFIG_MSIX_VECTOR:
        this.configMsixVector = this.mapVector(value, undefined);
        this.configVectorUnverified = this.configMsixVector !== VIRTIO_MSI_NO_VECTOR;
        return;
      case C.DEVICE_STATUS: this.status_.write(value, () => this.driverFeatures()); return;
      case C.QUEUE_SELECT: this.queueSelect = value; return;
      case C.QUEUE_MSIX_VECTOR:
        if (!q) return;
        q.msixVector = this.mapVector(value, q.index);
        q.vectorUnverified = q.msixVector !== VIRTIO_MSI_NO_VECTOR;
        return;
      case C.QUEUE_SIZE:
        if (!q || !this.configurable(q, offset)) return;
        if (this.validSize(q, value)) q.size = value;
        else this.host.violation('queue-size-invalid', this.sizeProblem(q, value), q.index);
        return;
      case C.QUEUE_ENABLE:
        if (!q) return;
        // §4.1.4.3.2: the driver never writes 0 to queue_enable; the device ignores it.
        if (value === 0) this.host.violation('queue-enable-zero', `0 written to queue_enable of queue ${q.index}`, q.index);
        else if (value === 1 && !q.enabled && this.configurable(q, offset)) this.host.enableQueue(q);
        return;
      case C.QUEUE_DESC: case C.QUEUE_DESC + 4:
        if (q && this.configurable(q, offset)) q.desc = setHalf(q.desc, offset - C.QUEUE_DESC, value);
        return;
      case C.QUEUE_DRIVER: case C.QUEUE_DRIVER + 4:
        if (q && this.configurable(q, offset)) q.driver = setHalf(q.driver, offset - C.QUEUE_DRIVER, value);
        return;
      case C.QUEUE_DEVICE: case C.QUEUE_DEVICE + 4:
        if (q && this.configurable(q, offset)) q.device = setHalf(q.device, offset - C.QUEUE_DEVICE, value);
        return;
      case C.QUEUE_AVAIL_STATE: case C.QUEUE_USED_STATE:
        this.writeState(q, offset === C.QUEUE_AVAIL_STATE ? 'avail' : 'used', value);
        return;
      default: // queue_reset, admin_queue_*: their features are never offered
    }
  }

  /** Whether `feature` was accepted at FEATURES_OK. */
  has(feature: number): boolean {
    return (this.status_.negotiated & bit(feature)) !== 0n;
  }

  private get packed(): boolean {
    return this.has(Feature.RING_PACKED);
  }

  /** A field of the right width inside the structure the capability exposes (§4.1.3.1), else recorded. */
  private decodes(offset: number, width: number): boolean {
    if (WIDTH[offset] === width && offset + width <= this.host.commonLength) return true;
    if (offset + width <= this.host.commonLength) {
      this.host.violation('register-access-invalid', `a ${width}-byte access at common configuration offset 0x${offset.toString(16)}`);
    }
    return false;
  }

  /** §3.1.1 step 4–5: features are written after DRIVER and fixed once FEATURES_OK is set. */
  private writeDriverFeature(value: number): void {
    const s = this.status_.value;
    if (s & Status.FEATURES_OK) {
      this.host.violation('features-written-late', `driver_feature window ${this.driverFeatureSelect} written after FEATURES_OK`);
      return;
    }
    if (!(s & Status.DRIVER)) this.host.violation('features-written-early', `driver_feature window ${this.driverFeatureSelect} written before DRIVER`);
    this.driverFeatureWindows.set(this.driverFeatureSelect, value);
  }

  /** The features the driver has written so far, all select windows together. */
  private driverFeatures(): bigint {
    let features = 0n;
    for (const [select, value] of this.driverFeatureWindows) features |= BigInt(value >>> 0) << BigInt(32 * select);
    return features;
  }

  /**
   * At DRIVER_OK (the device calls it before going live): every vector mapped was read back
   * (§4.1.5.1.2.2), every enabled queue's state written (the proposal).
   */
  checkBeforeLive(): void {
    if (this.configVectorUnverified) this.host.violation('msix-vector-unverified', 'config_msix_vector was never read back after it was mapped');
    for (const q of this.host.queues) {
      if (q.vectorUnverified) this.host.violation('msix-vector-unverified', `queue_msix_vector of queue ${q.index} was never read back`, q.index);
      if (q.enabled && this.has(Feature.RING_STATE) && !(q.stateWritten.avail && q.stateWritten.used)) {
        this.host.violation('state-not-written', `queue ${q.index} went live without its state written (RING_STATE negotiated)`, q.index);
      }
    }
  }

  /**
   * Queue registers are programmed after FEATURES_OK and before DRIVER_OK (§3.1.1 step 7), while
   * the queue is disabled (§4.1.4.3.2); a write outside that window is recorded and ignored (not
   * recorded once the device needs a reset: nothing the driver does then is meaningful).
   */
  private configurable(q: SimQueue, offset: number, rule?: RuleId): boolean {
    const s = this.status_.value;
    if (!q.enabled && (s & Status.FEATURES_OK) !== 0 && (s & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === 0) return true;
    if (s & Status.DEVICE_NEEDS_RESET) return false;
    const field = QUEUE_FIELD_NAMES[offset] ?? (offset === C.QUEUE_AVAIL_STATE ? 'queue_avail_state' : 'queue_used_state');
    const when = s & Status.DRIVER_OK ? 'after DRIVER_OK' : q.enabled ? 'while the queue is enabled' : 'before FEATURES_OK';
    const id = rule ?? (q.enabled ? 'queue-config-while-enabled' : 'queue-config-out-of-window');
    this.host.violation(id, `${field} of queue ${q.index} written ${when}`, q.index);
    return false;
  }

  /** §4.1.4.3.2: non-zero, at most the maximum (§4.1.5.1.3); a power of two unless RING_PACKED was negotiated. */
  private validSize(q: SimQueue, size: number): boolean {
    if (size < 1 || size > q.maxSize) return false;
    return this.packed || (size & (size - 1)) === 0;
  }

  private sizeProblem(q: SimQueue, size: number): string {
    if (size === 0) return `queue_size 0 written for queue ${q.index}`;
    if (size > q.maxSize) return `queue_size ${size} written for queue ${q.index}, above its maximum ${q.maxSize}`;
    return `queue_size ${size} written for split queue ${q.index}: not a power of 2`;
  }

  /** §4.1.5.1.2: a vector beyond the MSI-X table cannot be mapped; it reads back NO_VECTOR (§4.1.5.1.2.2: the driver never asks). */
  private mapVector(vector: number, queue: number | undefined): number {
    if (vector === VIRTIO_MSI_NO_VECTOR || vector < this.host.msixTableSize) return vector;
    this.host.violation('msix-vector-out-of-range', `vector ${vector} asked for ${queue === undefined ? 'configuration changes' : `queue ${queue}`}; the MSI-X table has ${this.host.msixTableSize}`, queue);
    return VIRTIO_MSI_NO_VECTOR;
  }

  /** The proposal: the state is read only while STOP shows (read anyway: the live values). */
  private readState(q: SimQueue | undefined, which: 'avail' | 'used'): number {
    if (!q || !this.has(Feature.RING_STATE)) return 0;
    if (this.host.phase !== 'stopped') {
      this.host.violation('state-read-not-stopped', `queue_${which}_state of queue ${q.index} read while the device is ${this.host.phase}`, q.index);
    }
    const lie = this.host.stateLie(q.index);
    const regs = readStateRegisters(q, this.packed);
    return lie === 0 ? regs[which] : lieAbout(regs, this.packed, lie)[which];
  }

  /** The proposal: the driver writes the state during initialisation, after FEATURES_OK and before DRIVER_OK, queue disabled. */
  private writeState(q: SimQueue | undefined, which: 'avail' | 'used', value: number): void {
    if (!q || !this.has(Feature.RING_STATE)) return;
    if (!this.configurable(q, which === 'avail' ? C.QUEUE_AVAIL_STATE : C.QUEUE_USED_STATE, 'state-write-out-of-window')) return;
    if (which === 'avail') writeAvailState(q, this.packed, value);
    else writeUsedState(q, this.packed, value);
    q.stateWritten[which] = true;
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

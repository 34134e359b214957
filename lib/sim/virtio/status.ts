// The device status field as a strict device runs it (virtio 1.2 §2.1, §2.4, §3.1.1), with the
// proposal's STOP bit and virtio 1.4's SUSPEND (docs/provisional-registers.md).
//
// §2.1.1: the driver never clears a bit (a write of 0 resets) and never sets DEVICE_NEEDS_RESET.
// §3.1.1: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in that order; FEATURES_OK sticks only for an
// acceptable subset of the offered features (§2.2.2). After FAILED, only a reset (§2.1.1). After
// a reset, the driver waits until device_status reads 0 (§4.1.4.3.2). STOP and SUSPEND are requests
// to a running device (DRIVER_OK set, neither pending); the device shows them later (device.ts).
// STOP is one-way: no write clears it, only a reset. Every break of these rules is recorded
// (rules.ts) and ignored: a bit that was not allowed does not read back, a bit cleared stays set.

import { Feature, Status, hasFeature } from '../../spec/index.js';
import type { RuleId } from './rules.js';

/** Where the device is between running and quiet: STOP and SUSPEND are requested, then shown once quiet. */
export type QuietPhase = 'running' | 'stopping' | 'stopped' | 'suspending' | 'suspended';

/** What the status field needs from the device behind it. */
export interface StatusHost {
  readonly offeredFeatures: bigint;
  readonly phase: QuietPhase;
  /** A reset was requested that does not complete (fault reset-stuck): status writes are ignored. */
  readonly resetStuck: boolean;
  /** 0 was written to device_status: reset the whole device (this field included) — or get stuck. */
  reset(): void;
  /** Why `features` cannot be accepted, as the rule the driver broke; undefined when it can. */
  featureProblem(features: bigint): { rule: RuleId; message: string } | undefined;
  /** Fault features-refuse: FEATURES_OK does not stick whatever the features. */
  featuresRefused(): boolean;
  featuresAccepted(features: bigint): void;
  driverOk(): void;
  quiesce(kind: 'stop' | 'suspend'): void;
  resume(): void;
  violation(rule: RuleId, message: string): void;
}

/** Status bits a driver may set; DEVICE_NEEDS_RESET belongs to the device, STOP and SUSPEND are requests. */
const DRIVER_STATUS_BITS = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK | Status.FAILED;
const hex = (v: number): string => `0x${v.toString(16)}`;

export class DeviceStatus {
  value = 0;
  /** Features fixed at FEATURES_OK; 0n before. */
  negotiated = 0n;
  /** 0 was written and device_status has not been read as 0 since (§4.1.4.3.2). */
  private resetUnread = false;

  constructor(private readonly host: StatusHost) {}

  /** Part of the device reset (the register reads 0 afterwards). */
  clear(): void {
    this.value = 0;
    this.negotiated = 0n;
  }

  read(): number {
    if (this.value === 0) this.resetUnread = false;
    return this.value;
  }

  /** `driverFeatures`: what the driver has written to driver_feature, all windows together. */
  write(value: number, driverFeatures: () => bigint): void {
    const host = this.host;
    if (host.resetStuck) {
      if (value !== 0) host.violation('reinit-before-reset-read', `status ${hex(value)} written while device_status still reads ${hex(this.value)} after a reset`);
      return;
    }
    if (value === 0) {
      host.reset();
      this.resetUnread = true;
      return;
    }
    if (this.resetUnread) {
      host.violation('reinit-before-reset-read', `status ${hex(value)} written after a reset, before device_status was read as 0`);
      this.resetUnread = false;
    }
    if (host.phase === 'suspended') {
      this.writeWhileSuspended(value);
      return;
    }
    const old = this.value;
    this.checkCleared(old, value, 0);
    if (old & Status.FAILED) {
      if (value & ~old & ~Status.FAILED) host.violation('init-after-failed', `status ${hex(value)} written after FAILED without a reset`);
      return;
    }
    let added = value & DRIVER_STATUS_BITS & ~old;
    const now = (): number => old | added;
    if ((added & Status.DRIVER) && !(now() & Status.ACKNOWLEDGE)) added = this.outOfOrder(added, Status.DRIVER, 'DRIVER before ACKNOWLEDGE');
    if (added & Status.FEATURES_OK) {
      if (!(old & Status.DRIVER)) added = this.outOfOrder(added, Status.FEATURES_OK, 'FEATURES_OK before DRIVER');
      else if (!this.acceptFeatures(driverFeatures())) added &= ~Status.FEATURES_OK;
    }
    if ((added & Status.DRIVER_OK) && !(now() & Status.FEATURES_OK)) added = this.outOfOrder(added, Status.DRIVER_OK, 'DRIVER_OK before FEATURES_OK');
    this.value = old | added;
    if (added & Status.DRIVER_OK) host.driverOk();
    this.quietRequests(old, value);
  }

  private has(feature: number): boolean {
    return hasFeature(this.negotiated, feature);
  }

  /** §2.1.1: no bit is cleared but by a reset — STOP above all (the proposal). `allowed`: bits the write may clear. */
  private checkCleared(old: number, value: number, allowed: number): void {
    const cleared = old & ~value & ~allowed;
    if (cleared & Status.STOP) this.host.violation('stop-cleared', `status ${hex(value)} written while STOP shows`);
    if (cleared & ~Status.STOP) this.host.violation('status-bit-cleared', `status ${hex(value)} written over ${hex(old)} clears ${hex(cleared & ~Status.STOP)}`);
  }

  private outOfOrder(added: number, bit: number, what: string): number {
    this.host.violation('status-out-of-order', `${what} (virtio 1.2 §3.1.1)`);
    return added & ~bit;
  }

  /** §2.2.1 / §6.1: an acceptable subset, else FEATURES_OK does not stick (§2.2.2). */
  private acceptFeatures(features: bigint): boolean {
    const problem = this.host.featureProblem(features);
    if (problem) {
      this.host.violation(problem.rule, problem.message);
      return false;
    }
    if (this.host.featuresRefused()) return false;
    this.negotiated = features;
    this.host.featuresAccepted(features);
    return true;
  }

  /** STOP (proposal) and SUSPEND (1.4 §3.4) ask a running device to quieten. */
  private quietRequests(old: number, value: number): void {
    const phase = this.host.phase;
    const running = (old & Status.DRIVER_OK) !== 0 && phase === 'running';
    if (value & Status.STOP) {
      if (running && this.has(Feature.RING_STATE)) this.host.quiesce('stop');
      else if (phase === 'running' || phase === 'suspending') this.host.violation('stop-not-allowed', this.why('STOP', Feature.RING_STATE, 'RING_STATE'));
    } else if (value & Status.SUSPEND) {
      if (running && this.has(Feature.SUSPEND)) this.host.quiesce('suspend');
      else if (phase === 'running' || phase === 'stopping') this.host.violation('suspend-not-allowed', this.why('SUSPEND', Feature.SUSPEND, 'VIRTIO_F_SUSPEND'));
    }
  }

  private why(bit: string, feature: number, name: string): string {
    if (!this.has(feature)) return `${bit} set without ${name} negotiated`;
    if (!(this.value & Status.DRIVER_OK)) return `${bit} set before DRIVER_OK`;
    return `${bit} set while the device is ${this.host.phase}`;
  }

  /** virtio 1.4 §3.4: DRIVER_OK with SUSPEND clear resumes the device; FAILED may still be set. */
  private writeWhileSuspended(value: number): void {
    this.checkCleared(this.value, value, Status.SUSPEND);
    this.value |= value & Status.FAILED;
    if ((value & Status.DRIVER_OK) && !(value & Status.SUSPEND)) {
      this.value = (this.value & ~Status.SUSPEND) | Status.DRIVER_OK;
      this.host.resume();
    }
  }
}

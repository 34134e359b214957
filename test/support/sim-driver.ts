// A deliberately minimal driver for testing the reference device at register level: raw BAR and
// config-space accesses, and rings built by hand in the shared DMA memory. It does not use the
// SDK's driver-side queues or transport, so the device is checked against the spec, not against
// the driver's reading of it.

import type { DmaRegion } from '../../lib/mem/dma.js';
import { PciConfig, enableBusMaster, walkCapabilities } from '../../lib/pci/config.js';
import type { RegisterWindow } from '../../lib/pci/function.js';
import type { Test } from 'tap';
import { RULES, RULE_GROUPS, createSimDevice, type Rule, type RuleGroup, type RuleId, type SimBlkDevice, type SimBlkOptions, type SimDevice } from '../../lib/sim/index.js';
import {
  CommonCfg, DescFlag, DeviceStateCmd, Feature, PACKED_STATE_WRAP, PCI_CAP_ID_VENDOR, PackedDesc, PackedEventFlag, PackedFlag, PciCapField,
  SplitDesc, Status, UsedFlag, bit,
} from '../../lib/spec/index.js';

export interface Seg {
  addr: bigint;
  len: number;
  write?: boolean;
}

export interface Used {
  id: number;
  len: number;
}

export interface VirtioCap {
  bar: number;
  offset: number;
  length: number;
  /** Where the capability itself sits in configuration space. */
  at: number;
}

/** The provisional state registers of one queue (docs/provisional-registers.md). */
export interface VqState {
  avail: number;
  used: number;
}

/** Lets the device's setImmediate processing and microtask interrupts run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class SimDriver {
  readonly bar: RegisterWindow;
  readonly caps = new Map<number, VirtioCap>();
  /** Vectors received through MSI-X, in order. */
  readonly vectors: number[] = [];
  /** The features last written to the device (negotiate). */
  features = 0n;

  constructor(readonly sim: SimDevice) {
    for (const cap of walkCapabilities(sim.fn)) {
      if (cap.id !== PCI_CAP_ID_VENDOR) continue;
      const type = sim.fn.configRead8(cap.offset + PciCapField.CFG_TYPE);
      if (this.caps.has(type)) continue;
      this.caps.set(type, {
        bar: sim.fn.configRead8(cap.offset + PciCapField.BAR),
        offset: sim.fn.configRead32(cap.offset + PciCapField.OFFSET),
        length: sim.fn.configRead32(cap.offset + PciCapField.LENGTH),
        at: cap.offset,
      });
    }
    this.bar = sim.fn.bar(4);
  }

  cap(type: number): VirtioCap {
    const c = this.caps.get(type);
    if (!c) throw new Error(`no virtio capability of type ${type}`);
    return c;
  }

  // ---- common configuration (type 1) ----
  private get common(): number {
    return this.cap(1).offset;
  }
  r8(off: number): number { return this.bar.read8(this.common + off); }
  r16(off: number): number { return this.bar.read16(this.common + off); }
  r32(off: number): number { return this.bar.read32(this.common + off); }
  w8(off: number, v: number): void { this.bar.write8(this.common + off, v); }
  w16(off: number, v: number): void { this.bar.write16(this.common + off, v); }
  w32(off: number, v: number): void { this.bar.write32(this.common + off, v); }

  get status(): number {
    return this.r8(CommonCfg.DEVICE_STATUS);
  }
  addStatus(bits: number): void {
    this.w8(CommonCfg.DEVICE_STATUS, this.status | bits);
  }
  reset(): void {
    this.w8(CommonCfg.DEVICE_STATUS, 0);
  }

  deviceFeatures(): bigint {
    let f = 0n;
    for (const sel of [0, 1]) {
      this.w32(CommonCfg.DEVICE_FEATURE_SELECT, sel);
      f |= BigInt(this.r32(CommonCfg.DEVICE_FEATURE) >>> 0) << BigInt(32 * sel);
    }
    return f;
  }

  writeDriverFeatures(f: bigint): void {
    for (const sel of [0, 1]) {
      this.w32(CommonCfg.DRIVER_FEATURE_SELECT, sel);
      this.w32(CommonCfg.DRIVER_FEATURE, Number((f >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
  }

  /** reset → ACKNOWLEDGE → DRIVER → features → FEATURES_OK; true when FEATURES_OK reads back. */
  negotiate(features: bigint): boolean {
    this.reset();
    enableBusMaster(this.sim.fn);
    this.addStatus(Status.ACKNOWLEDGE);
    this.addStatus(Status.DRIVER);
    this.writeDriverFeatures(features);
    this.features = features;
    this.addStatus(Status.FEATURES_OK);
    return (this.status & Status.FEATURES_OK) !== 0;
  }

  /** Negotiates VERSION_1 plus `extra` (which must be offered), enables MSI-X, returns the features. */
  start(extra: bigint = 0n): bigint {
    const features = bit(Feature.VERSION_1) | extra;
    if (!this.negotiate(features)) throw new Error('FEATURES_OK refused');
    this.sim.fn.msix.enable(this.sim.fn.msix.tableSize, (v) => this.vectors.push(v));
    return features;
  }

  driverOk(): void {
    this.addStatus(Status.DRIVER_OK);
  }

  /** Maps configuration changes to `vector` and reads it back (§4.1.5.1.2.2); returns what reads back. */
  setConfigVector(vector: number): number {
    this.w16(CommonCfg.CONFIG_MSIX_VECTOR, vector);
    return this.r16(CommonCfg.CONFIG_MSIX_VECTOR);
  }

  selectQueue(q: number): void {
    this.w16(CommonCfg.QUEUE_SELECT, q);
  }

  write64(off: number, v: bigint): void {
    this.w32(off, Number(v & 0xffff_ffffn));
    this.w32(off + 4, Number(v >> 32n));
  }

  /**
   * Programs queue `q` with `ring`, maps it to vector `q` (and reads the vector back, virtio 1.2
   * §4.1.5.1.2.2), writes `state` if given (RING_STATE), enables it.
   */
  setupQueue(q: number, ring: TestRing, state?: VqState): void {
    this.selectQueue(q);
    this.w16(CommonCfg.QUEUE_SIZE, ring.size);
    this.w16(CommonCfg.QUEUE_MSIX_VECTOR, q);
    this.r16(CommonCfg.QUEUE_MSIX_VECTOR);
    this.write64(CommonCfg.QUEUE_DESC, ring.desc.iova);
    this.write64(CommonCfg.QUEUE_DRIVER, ring.driverArea.iova);
    this.write64(CommonCfg.QUEUE_DEVICE, ring.deviceArea.iova);
    if (state) this.writeVqState(q, state);
    this.w16(CommonCfg.QUEUE_ENABLE, 1);
  }

  // ---- the proposal: STOP, state registers, DEVICE_STATE mailbox (PROVISIONAL, docs/provisional-registers.md) ----

  readVqState(q: number): VqState {
    this.selectQueue(q);
    return { avail: this.r16(CommonCfg.QUEUE_AVAIL_STATE), used: this.r16(CommonCfg.QUEUE_USED_STATE) };
  }

  writeVqState(q: number, state: VqState): void {
    this.selectQueue(q);
    this.w16(CommonCfg.QUEUE_AVAIL_STATE, state.avail);
    this.w16(CommonCfg.QUEUE_USED_STATE, state.used);
  }

  /** Polls device_status once per event-loop turn until `done`; returns the turns it took. */
  async waitStatus(done: (status: number) => boolean, turns = 50): Promise<number> {
    for (let i = 0; i < turns; i++) {
      if (done(this.status)) return i;
      await settle(1);
    }
    throw new Error(`device_status 0x${this.status.toString(16)} did not reach the wanted state in ${turns} turns`);
  }

  get deviceStateLen(): number {
    return this.r32(CommonCfg.DEVICE_STATE_LEN) >>> 0;
  }

  /** Runs a DEVICE_STATE command on `region`; returns what CMD reads back (0 done, else the refusal code). */
  deviceStateCommand(cmd: number, region: { iova: bigint }, length?: number): number {
    this.write64(CommonCfg.DEVICE_STATE_ADDR, region.iova);
    if (length !== undefined) this.w32(CommonCfg.DEVICE_STATE_LEN, length);
    this.w16(CommonCfg.DEVICE_STATE_CMD, cmd);
    return this.r16(CommonCfg.DEVICE_STATE_CMD);
  }

  /** SAVE into a new buffer: the bytes, or undefined when refused. */
  saveDeviceState(): Uint8Array | undefined {
    const len = this.deviceStateLen;
    const buf = this.alloc(Math.max(len, 1));
    if (this.deviceStateCommand(DeviceStateCmd.SAVE, buf) !== 0) return undefined;
    return buf.bytes.slice(0, len);
  }

  /** LOAD `bytes` from a new buffer: true when the device took them. */
  loadDeviceState(bytes: Uint8Array): boolean {
    return this.deviceStateCommand(DeviceStateCmd.LOAD, this.buffer(bytes.length > 0 ? bytes : new Uint8Array(1)), bytes.length) === 0;
  }

  notify(q: number): void {
    this.selectQueue(q);
    const off = this.r16(CommonCfg.QUEUE_NOTIFY_OFF);
    const cap = this.cap(2);
    const mult = this.sim.fn.configRead32(cap.at + PciCapField.NOTIFY_OFF_MULTIPLIER);
    this.bar.write16(cap.offset + off * mult, q);
  }

  readIsr(): number {
    return this.bar.read8(this.cap(3).offset);
  }

  config8(off: number): number { return this.bar.read8(this.cap(4).offset + off); }
  config16(off: number): number { return this.bar.read16(this.cap(4).offset + off); }
  config32(off: number): number { return this.bar.read32(this.cap(4).offset + off); }

  /** A zeroed buffer in the shared memory. */
  alloc(len: number): DmaRegion {
    return this.sim.dma.alloc(len);
  }

  buffer(bytes: Uint8Array): DmaRegion {
    const r = this.alloc(bytes.length);
    r.bytes.set(bytes);
    return r;
  }

  get commandRegister(): number {
    return this.sim.fn.configRead16(PciConfig.COMMAND);
  }
}

export interface TestRing {
  readonly size: number;
  readonly desc: DmaRegion;
  readonly driverArea: DmaRegion;
  readonly deviceArea: DmaRegion;
  /** Makes a chain available; returns its id (split: head index; packed: buffer id). */
  add(segs: Seg[], options?: { indirect?: boolean }): number;
  /** Used elements the device wrote since the last call. */
  takeUsed(): Used[];
  /** Where the driver's next posting goes (split: avail->idx; packed: off_wrap of the next descriptor). */
  readonly availMark: number;
  /** Whether the device's notification suppression asks to hear of what was made available since `before` (an availMark). */
  deviceWantsNotify(before: number): boolean;
}

/**
 * Makes each of `chains` available on queue `q` and then notifies only when the device asks for it
 * (deviceWantsNotify: the spec read strictly, no guard); returns whether it notified.
 */
export function postStrict(d: SimDriver, q: number, ring: TestRing, chains: Seg[][]): { ids: number[]; notified: boolean } {
  const before = ring.availMark;
  const ids = chains.map((segs) => ring.add(segs));
  const notified = ring.deviceWantsNotify(before);
  if (notified) d.notify(q);
  return { ids, notified };
}

/** A copy of every byte of a ring (descriptors, driver area, device area), to prove nobody wrote it. */
export function ringBytes(ring: TestRing): Uint8Array[] {
  return [ring.desc.bytes.slice(), ring.driverArea.bytes.slice(), ring.deviceArea.bytes.slice()];
}

function view(r: DmaRegion): DataView {
  return new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
}

export class SplitRing implements TestRing {
  readonly desc: DmaRegion;
  readonly driverArea: DmaRegion;
  readonly deviceArea: DmaRegion;
  readonly descs: DataView;
  readonly avail: DataView;
  readonly used: DataView;
  private nextDesc = 0;
  private availIdx = 0;
  private lastUsed = 0;

  constructor(private readonly driver: SimDriver, readonly size: number) {
    this.desc = driver.sim.dma.alloc(SplitDesc.SIZE * size, 16);
    this.driverArea = driver.sim.dma.alloc(6 + 2 * size, 2);
    this.deviceArea = driver.sim.dma.alloc(6 + 8 * size, 4);
    this.descs = view(this.desc);
    this.avail = view(this.driverArea);
    this.used = view(this.deviceArea);
  }

  writeDesc(table: DataView, i: number, s: Seg, flags: number, next: number): void {
    const at = i * SplitDesc.SIZE;
    table.setBigUint64(at + SplitDesc.ADDR, s.addr, true);
    table.setUint32(at + SplitDesc.LEN, s.len, true);
    table.setUint16(at + SplitDesc.FLAGS, flags | (s.write ? DescFlag.WRITE : 0), true);
    table.setUint16(at + SplitDesc.NEXT, next, true);
  }

  add(segs: Seg[], options: { indirect?: boolean } = {}): number {
    const head = this.nextDesc % this.size;
    if (options.indirect) {
      const table = this.driver.alloc(SplitDesc.SIZE * segs.length);
      const tv = view(table);
      segs.forEach((s, i) => this.writeDesc(tv, i, s, i < segs.length - 1 ? DescFlag.NEXT : 0, i + 1));
      this.writeDesc(this.descs, head, { addr: table.iova, len: table.size }, DescFlag.INDIRECT, 0);
      this.nextDesc++;
    } else {
      segs.forEach((s, i) => {
        const idx = (this.nextDesc + i) % this.size;
        this.writeDesc(this.descs, idx, s, i < segs.length - 1 ? DescFlag.NEXT : 0, (idx + 1) % this.size);
      });
      this.nextDesc += segs.length;
    }
    this.publish(head);
    return head;
  }

  /**
   * A ring whose free-running indices start at `idx` (as memory holds them after a run that got
   * there): avail->idx = used->idx = idx. The device must be told the same through the state registers.
   */
  startAt(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.lastUsed = idx & 0xffff;
    this.avail.setUint16(2, this.availIdx, true);
    this.used.setUint16(2, this.lastUsed, true);
  }

  /** Puts `head` in the available ring and moves avail->idx. */
  publish(head: number): void {
    this.avail.setUint16(4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.avail.setUint16(2, this.availIdx, true);
  }

  get usedIdx(): number {
    return this.used.getUint16(2, true);
  }

  takeUsed(): Used[] {
    const out: Used[] = [];
    const idx = this.usedIdx;
    while (this.lastUsed !== idx) {
      const at = 4 + 8 * (this.lastUsed % this.size);
      out.push({ id: this.used.getUint32(at, true), len: this.used.getUint32(at + 4, true) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** The used element at used-ring slot `slot`, whatever idx says. */
  usedAt(slot: number): Used {
    const at = 4 + 8 * slot;
    return { id: this.used.getUint32(at, true), len: this.used.getUint32(at + 4, true) };
  }

  set usedEvent(v: number) {
    this.avail.setUint16(4 + 2 * this.size, v, true);
  }
  set availFlags(v: number) {
    this.avail.setUint16(0, v, true);
  }
  get usedFlags(): number {
    return this.used.getUint16(0, true);
  }
  get availEvent(): number {
    return this.used.getUint16(4 + 8 * this.size, true);
  }
  /** avail->idx as the driver last published it. */
  get availIndex(): number {
    return this.avail.getUint16(2, true);
  }
  get availMark(): number {
    return this.availIndex;
  }

  /**
   * §2.7.10 read strictly, as a driver with no guard of its own: having moved avail->idx from
   * `before` to where it is, notify when avail_event lies in between (vring_need_event, 16 bits).
   */
  deviceWantsNotify(before: number): boolean {
    if ((this.driver.features & bit(Feature.EVENT_IDX)) === 0n) return (this.usedFlags & UsedFlag.NO_NOTIFY) === 0;
    return ((this.availIndex - this.availEvent - 1) & 0xffff) < ((this.availIndex - before) & 0xffff);
  }
}

export class PackedRing implements TestRing {
  readonly desc: DmaRegion;
  readonly driverArea: DmaRegion;
  readonly deviceArea: DmaRegion;
  readonly descs: DataView;
  readonly driverEvent: DataView;
  readonly deviceEvent: DataView;
  private nextAvail = 0;
  private availWrap = true;
  private nextUsed = 0;
  private usedWrap = true;
  private nextId = 0;
  private readonly descCount = new Map<number, number>();

  constructor(private readonly driver: SimDriver, readonly size: number) {
    this.desc = driver.sim.dma.alloc(PackedDesc.SIZE * size, 16);
    this.driverArea = driver.sim.dma.alloc(4, 4);
    this.deviceArea = driver.sim.dma.alloc(4, 4);
    this.descs = view(this.desc);
    this.driverEvent = view(this.driverArea);
    this.deviceEvent = view(this.deviceArea);
  }

  private availFlags(wrap: boolean): number {
    return wrap ? PackedFlag.AVAIL : PackedFlag.USED;
  }

  add(segs: Seg[], options: { indirect?: boolean } = {}): number {
    const id = this.nextId++ % this.size;
    const ringSegs = options.indirect ? [this.indirectTable(segs)] : segs;
    const first = this.nextAvail;
    let firstFlags = 0;
    ringSegs.forEach((s, i) => {
      const at = this.nextAvail * PackedDesc.SIZE;
      const flags = (i < ringSegs.length - 1 ? PackedFlag.NEXT : 0) | (s.write ? PackedFlag.WRITE : 0)
        | (options.indirect ? PackedFlag.INDIRECT : 0) | this.availFlags(this.availWrap);
      this.descs.setBigUint64(at + PackedDesc.ADDR, s.addr, true);
      this.descs.setUint32(at + PackedDesc.LEN, s.len, true);
      this.descs.setUint16(at + PackedDesc.ID, id, true);
      if (i === 0) firstFlags = flags;
      else this.descs.setUint16(at + PackedDesc.FLAGS, flags, true);
      if (++this.nextAvail === this.size) {
        this.nextAvail = 0;
        this.availWrap = !this.availWrap;
      }
    });
    // §2.8.6: the first descriptor's flags go last, making the whole list available at once.
    this.descs.setUint16(first * PackedDesc.SIZE + PackedDesc.FLAGS, firstFlags, true);
    this.descCount.set(id, ringSegs.length);
    return id;
  }

  private indirectTable(segs: Seg[]): Seg {
    const table = this.driver.alloc(PackedDesc.SIZE * segs.length);
    const tv = view(table);
    segs.forEach((s, i) => {
      tv.setBigUint64(i * PackedDesc.SIZE + PackedDesc.ADDR, s.addr, true);
      tv.setUint32(i * PackedDesc.SIZE + PackedDesc.LEN, s.len, true);
      tv.setUint16(i * PackedDesc.SIZE + PackedDesc.FLAGS, s.write ? PackedFlag.WRITE : 0, true);
    });
    return { addr: table.iova, len: table.size };
  }

  flagsAt(slot: number): number {
    return this.descs.getUint16(slot * PackedDesc.SIZE + PackedDesc.FLAGS, true);
  }

  takeUsed(): Used[] {
    const out: Used[] = [];
    for (;;) {
      const at = this.nextUsed * PackedDesc.SIZE;
      const flags = this.descs.getUint16(at + PackedDesc.FLAGS, true);
      const avail = (flags & PackedFlag.AVAIL) !== 0;
      const used = (flags & PackedFlag.USED) !== 0;
      if (avail !== this.usedWrap || used !== this.usedWrap) return out;
      const id = this.descs.getUint16(at + PackedDesc.ID, true);
      out.push({ id, len: this.descs.getUint32(at + PackedDesc.LEN, true) });
      this.nextUsed += this.descCount.get(id) ?? 1;
      if (this.nextUsed >= this.size) {
        this.nextUsed -= this.size;
        this.usedWrap = !this.usedWrap;
      }
    }
  }

  /** Driver event suppression: flags (ENABLE 0, DISABLE 1, DESC 2) and off|wrap<<15. */
  setDriverEvent(flags: number, offWrap = 0): void {
    this.driverEvent.setUint16(0, offWrap, true);
    this.driverEvent.setUint16(2, flags, true);
  }
  get deviceEventFlags(): number {
    return this.deviceEvent.getUint16(2, true);
  }
  get deviceEventOffWrap(): number {
    return this.deviceEvent.getUint16(0, true);
  }
  /** The next descriptor the driver will make available, as off_wrap: slot | Driver Ring Wrap Counter << 15 (§2.8.14). */
  get nextAvailOffWrap(): number {
    return this.nextAvail | (this.availWrap ? 0x8000 : 0);
  }
  get availMark(): number {
    return this.nextAvailOffWrap;
  }

  /**
   * §2.8.10 read strictly, as a driver with no guard of its own: having made the descriptors from
   * off_wrap `before` up to the next one available, notify when the device event flags are not
   * DISABLE and, for DESC, when off_wrap names one of those descriptors.
   */
  deviceWantsNotify(before: number): boolean {
    const flags = this.deviceEventFlags;
    if (flags === PackedEventFlag.DISABLE) return false;
    if (flags !== PackedEventFlag.DESC) return true;
    // Slot and wrap counter as one position modulo 2 × size (wrap counter 1: the first lap).
    const m = 2 * this.size;
    const position = (offWrap: number): number => (offWrap & 0x7fff) + (offWrap & 0x8000 ? 0 : this.size);
    const old = position(before);
    return (position(this.deviceEventOffWrap) - old + m) % m < (position(this.nextAvailOffWrap) - old + m) % m;
  }
}

export interface BlkRequest {
  segs: Seg[];
  header: DmaRegion;
  data: DmaRegion | undefined;
  status: DmaRegion;
}

/**
 * A virtio-blk request (virtio 1.2 §5.2.6): header, then data (device-readable for OUT, writable
 * for IN, GET_ID), then the status byte. `data` is the bytes to write or the length to read.
 */
export function blkRequest(driver: SimDriver, type: number, sector: bigint, data?: Uint8Array | number): BlkRequest {
  const header = driver.alloc(16);
  const hv = view(header);
  hv.setUint32(0, type, true);
  hv.setBigUint64(8, sector, true);
  const region = data === undefined ? undefined : typeof data === 'number' ? driver.alloc(data) : driver.buffer(data);
  const status = driver.alloc(1);
  status.bytes[0] = 0xff;
  const segs: Seg[] = [{ addr: header.iova, len: 16 }];
  if (region) segs.push({ addr: region.iova, len: region.size, write: typeof data === 'number' });
  segs.push({ addr: status.iova, len: 1, write: true });
  return { segs, header, data: region, status };
}

export type Layout = 'split' | 'packed';

/**
 * `sim` brought up by the book: features (VERSION_1 + `extra`, and RING_PACKED for packed), the
 * config vector, queue 0 of `size` entries (with the initial state when RING_STATE is negotiated),
 * DRIVER_OK. A correct bring-up records no violation.
 */
export function liveDevice<S extends SimDevice>(sim: S, layout: Layout = 'split', extra = 0n, size = 8): { sim: S; d: SimDriver; ring: SplitRing | PackedRing } {
  const d = new SimDriver(sim);
  const features = d.start(layoutFeatures(layout, extra));
  d.setConfigVector(sim.fn.msix.tableSize - 1);
  const ring = newRing(d, layout, size);
  d.setupQueue(0, ring, (features & bit(Feature.RING_STATE)) !== 0n ? initialState(layout) : undefined);
  d.driverOk();
  return { sim, d, ring };
}

/** The ids of the violations `sim` recorded, in order. */
export function ruleIds(sim: SimDevice): string[] {
  return sim.violations.map((v) => v.id);
}

export function newRing(driver: SimDriver, layout: Layout, size: number): SplitRing | PackedRing {
  return layout === 'split' ? new SplitRing(driver, size) : new PackedRing(driver, size);
}

/** The state a fresh start writes (the proposal): split 0/0; packed index 0 with both wrap counters 1. */
export function initialState(layout: Layout): VqState {
  return layout === 'split' ? { avail: 0, used: 0 } : { avail: PACKED_STATE_WRAP, used: PACKED_STATE_WRAP };
}

/** The transport features for `layout`, plus `extra`. */
export function layoutFeatures(layout: Layout, extra = 0n): bigint {
  return (layout === 'packed' ? bit(Feature.RING_PACKED) : 0n) | extra;
}

// ---- strict-device rule cases (strict-rules-*.test.ts) ----

/** A blk device of 64 sectors with `o`. */
export function smallBlk(o: Omit<SimBlkOptions, 'type'> = {}): SimBlkDevice {
  return createSimDevice({ type: 'blk', capacitySectors: 64, ...o });
}

/** Sends `segs` on queue 0 and lets the device run. */
export async function sendChain(d: SimDriver, ring: TestRing, segs: Seg[], options?: { indirect?: boolean }): Promise<void> {
  ring.add(segs, options);
  d.notify(0);
  await settle();
}

/** A blk request of `type` on the live device's queue 0; resolves with its status byte. */
export async function blkStatus(d: SimDriver, ring: TestRing, type: number, sector: bigint, data?: Uint8Array | number): Promise<number> {
  const r = blkRequest(d, type, sector, data);
  await sendChain(d, ring, r.segs);
  return r.status.bytes[0]!;
}

/** A 64-byte buffer, device-readable unless `write`. */
export function buf64(d: SimDriver, write = false): Seg {
  return { addr: d.alloc(64).iova, len: 64, write };
}

/** A net device with its rx (0) and tx (1) queues set up (DRIVER_OK not yet set); `extra` features. */
export function liveNet(options: { mergeable?: boolean; queuePairs?: number } = {}, extra = 0n) {
  const sim = createSimDevice({ type: 'net', ...options });
  const d = new SimDriver(sim);
  d.start(extra);
  d.setConfigVector(0);
  const rx = new SplitRing(d, 8);
  const tx = new SplitRing(d, 8);
  d.setupQueue(0, rx);
  d.setupQueue(1, tx);
  return { sim, d, rx, tx };
}

/** One driver rule broken once (lib/sim/virtio/rules.ts). */
export interface RuleCase {
  rule: RuleId;
  /** What the driver does wrong. */
  name: string;
  /** Breaks the rule (checking what became of the access on the way); returns the device. */
  run: (t: Test) => Promise<SimDevice> | SimDevice;
}

/**
 * Runs each case: the violations recorded are exactly the case's rule, with its section and
 * action; a 'needs-reset' rule sets DEVICE_NEEDS_RESET with a failure naming the rule, an 'ignore'
 * rule neither. Then checks that every rule of `groups` has exactly one case.
 */
export function runRuleCases(t: Test, cases: readonly RuleCase[], groups: readonly RuleGroup[]): void {
  for (const c of cases) {
    t.test(`${c.rule}: ${c.name}`, async (t) => {
      const sim = await c.run(t);
      t.same(ruleIds(sim), [c.rule], `recorded: ${c.rule}`);
      const v = sim.violations.find((x) => x.id === c.rule);
      const rule: Rule = RULES[c.rule];
      t.equal(v?.section, rule.section, `section ${rule.section}`);
      t.equal(v?.action, rule.action, `action ${rule.action}`);
      t.ok(v && v.message.length > 0 && v.count >= 1, `message: ${v?.message ?? ''}`);
      const status = new SimDriver(sim).status;
      if (rule.action === 'needs-reset') {
        t.ok(status & Status.DEVICE_NEEDS_RESET, 'DEVICE_NEEDS_RESET');
        t.equal((sim.failure as { rule?: string } | undefined)?.rule, c.rule, 'failure names the rule');
        t.equal((sim.failure as { code?: string } | undefined)?.code, rule.code, `failure code ${rule.code ?? ''}`);
      } else {
        t.notOk(status & Status.DEVICE_NEEDS_RESET, 'no DEVICE_NEEDS_RESET');
        t.equal(sim.failure, undefined, 'no failure');
      }
      sim.fn.close();
    });
  }
  t.test(`every rule of ${groups.join(', ')} has one case here`, async (t) => {
    const wanted = groups.flatMap((g) => [...RULE_GROUPS[g]] as RuleId[]);
    t.same(cases.map((c) => c.rule).sort(), [...wanted].sort());
  });
}

// The modern virtio-pci transport (virtio 1.2 §4.1) over any PciFunction: common configuration,
// notifications with notify_off_multiplier, ISR, raw device configuration and config_generation,
// MSI-X vector assignment with read-back, and the stop/state facilities of ./state.ts.

import { enableBusMaster } from '../../pci/config.js';
import type { PciFunction, RegisterWindow } from '../../pci/function.js';
import type { DmaAllocator } from '../../mem/dma.js';
import { COMMON_CFG_EXT_LEN, COMMON_CFG_LEN, CommonCfg, DEVICE_STATE_REFUSAL_REASONS, DeviceStateCmd, Feature, VIRTIO_MSI_NO_VECTOR, hasFeature } from '../../spec/index.js';
import { DeviceError, TimeoutError, UsageError, type UvirtioError } from '../../errors.js';
import type { ConfigWidth, DeviceStateMailbox, QueueSetup, StateFacility, VirtioTransport, VqState } from '../types.js';
import { ringStateFacility, suspendFacility, type StateRegisters } from './state.js';
import { backoff } from '../../util/backoff.js';
import { discoverVirtioPci, type VirtioPciLayout, type VirtioRegion } from './caps.js';
import { Listeners } from '../../util/listeners.js';
import { shown } from '../../util/shown.js';

/**
 * The transport made over each PciFunction, open or closed: one at a time drives a function's
 * registers (a second would reset the device under the first one's driver, which the per-transport
 * claim of lib/virtio/transport-owner.ts cannot see), and a closed one closed the function too.
 * VFIO refuses a second open of a device in the kernel; the PciFunction interface promises nothing
 * of the kind, so the transport keeps count itself. The claim is keyed on the function object and
 * on the register windows its bar() hands out (each implementation's own objects, the same for
 * every call): a wrapper of the function — a Proxy, an object whose prototype is the function —
 * calls the function's own bar() and so reaches the same windows, which are claimed. (A wrapper
 * that builds new windows of its own around the registers is another way to the device that no
 * in-process identity can see.)
 */
const onFunction = new WeakMap<object, VirtioPciTransport>();

/**
 * The modern virtio-pci transport (virtio 1.2 §4.1) over any PciFunction (VFIO, the simulator): it
 * finds the virtio capabilities (§4.1.4), enables bus mastering and gives register-level access
 * through the common configuration structure (§4.1.4.3), notifications (§4.1.4.4), MSI-X and the
 * device-specific configuration. Stop/state: the provisional ring-state and SUSPEND facilities
 * (docs/provisional-registers.md#state-registers). The constructor throws {@link DeviceError}
 * E_NOT_VIRTIO (not a modern virtio function), E_CAP_MISSING or E_CAP_INVALID (bad capabilities).
 */
export class VirtioPciTransport implements VirtioTransport {
  readonly address: string;
  readonly deviceType: number;
  readonly numQueues: number;
  readonly configLength: number;
  /** See VirtioTransport.configMissingHint. */
  get configMissingHint(): string {
    return this.configLength === 0
      ? 'the device has no device-specific configuration structure (VIRTIO_PCI_CAP_DEVICE_CFG); it cannot be driven as its type defines'
      : `the device's configuration structure (VIRTIO_PCI_CAP_DEVICE_CFG) ends at ${this.configLength} bytes: a field is there only when the device offers the feature that announces it (\`uvirtio info\` lists them), else the device is incomplete`;
  }
  private readonly layout: VirtioPciLayout;
  private readonly c: RegisterWindow;
  private readonly cb: number;
  private readonly notifiers = new Map<number, () => void>();
  private isClosed = false;
  private readonly lostListeners = new Listeners<[UvirtioError]>('transport lost');

  /**
   * @param fn the PCI function to drive; its DMA allocator becomes this transport's. Throws
   * UsageError E_INVALID_ARGUMENT when it is not a PciFunction (an address string, null, {}: use
   * openTransport(address), which finds and opens the function), before anything reads it;
   * E_DEVICE_IN_USE when another VirtioPciTransport is open on it (one transport per function; the
   * same function behind a Proxy or Object.create(fn) is the same function: it reaches the same
   * register windows), and E_CLOSED when one was closed (its close() closed the function), before
   * anything is written.
   */
  constructor(
    /** The PCI function the device is on (its config space, BARs, MSI-X and DMA). */
    readonly fn: PciFunction,
  ) {
    checkPciFunction(fn);
    checkFunctionFree(fn, fn);
    this.address = fn.address;
    this.layout = discoverVirtioPci(fn);
    // Discovery only reads; the windows it found are claimed before the first write (enableBusMaster).
    const windows = layoutWindows(this.layout);
    for (const w of windows) checkFunctionFree(w, fn);
    this.deviceType = this.layout.deviceType;
    this.c = this.layout.common.window;
    this.cb = this.layout.common.offset;
    this.configLength = this.layout.device?.length ?? 0;
    enableBusMaster(fn);
    this.numQueues = this.c.read16(this.cb + CommonCfg.NUM_QUEUES);
    // Only a transport that was made claims the function (and its windows, reached through any wrapper).
    for (const key of [fn, ...windows]) onFunction.set(key, this);
  }

  get dma(): DmaAllocator {
    return this.fn.dma;
  }

  get deviceOnDriverThread(): boolean {
    return this.fn.deviceOnDriverThread === true;
  }

  // ---- status and reset (virtio 1.2 §2.1, §2.4) ----
  readStatus(): number {
    return this.c.read8(this.cb + CommonCfg.DEVICE_STATUS);
  }
  writeStatus(status: number): void {
    this.c.write8(this.cb + CommonCfg.DEVICE_STATUS, status);
  }
  async reset(timeoutMs: number): Promise<void> {
    this.writeStatus(0);
    // §4.1.4.3.2: after writing 0 the driver MUST wait for a read of device_status to return 0.
    const deadline = Date.now() + timeoutMs;
    for (let spins = 0; this.readStatus() !== 0; spins++) {
      if (Date.now() > deadline) {
        throw new TimeoutError('E_RESET_TIMEOUT', `${this.address}: device_status did not read 0 within ${timeoutMs} ms of a reset`,
          'the device is wedged; a function-level reset (or a VM restart) is needed');
      }
      await backoff(spins);
    }
    this.notifiers.clear();
  }

  // ---- features (virtio 1.2 §4.1.4.3: 32-bit windows chosen by the select registers) ----
  deviceFeatures(): bigint {
    let features = 0n;
    for (let word = 0; word < 4; word++) {
      this.c.write32(this.cb + CommonCfg.DEVICE_FEATURE_SELECT, word);
      features |= BigInt(this.c.read32(this.cb + CommonCfg.DEVICE_FEATURE) >>> 0) << BigInt(32 * word);
    }
    return features;
  }
  writeDriverFeatures(features: bigint): void {
    for (let word = 0; word < 4; word++) {
      this.c.write32(this.cb + CommonCfg.DRIVER_FEATURE_SELECT, word);
      this.c.write32(this.cb + CommonCfg.DRIVER_FEATURE, Number((features >> BigInt(32 * word)) & 0xffffffffn));
    }
  }

  // ---- queues (virtio 1.2 §4.1.5.1.3) ----
  /**
   * Writes queue_select (virtio 1.2 §4.1.4.3) so that the queue_* registers address queue `q`.
   * Throws {@link UsageError} E_QUEUE_UNAVAILABLE when `q` is not below num_queues.
   */
  selectQueue(q: number): void {
    if (!Number.isInteger(q) || q < 0 || q >= this.numQueues) {
      throw new UsageError('E_QUEUE_UNAVAILABLE', `${this.address}: queue ${q} does not exist (the device has ${this.numQueues})`);
    }
    this.c.write16(this.cb + CommonCfg.QUEUE_SELECT, q);
  }
  queueMaxSize(q: number): number {
    this.selectQueue(q);
    return this.c.read16(this.cb + CommonCfg.QUEUE_SIZE);
  }
  configureQueue(q: number, setup: QueueSetup): number {
    this.selectQueue(q);
    const c = this.c;
    const base = this.cb;
    c.write16(base + CommonCfg.QUEUE_SIZE, setup.size);
    write64(c, base + CommonCfg.QUEUE_DESC, setup.addresses.desc);
    write64(c, base + CommonCfg.QUEUE_DRIVER, setup.addresses.driver);
    write64(c, base + CommonCfg.QUEUE_DEVICE, setup.addresses.device);
    c.write16(base + CommonCfg.QUEUE_MSIX_VECTOR, setup.vector);
    // §4.1.5.1.2: read the vector back; NO_VECTOR means the device could not allocate it.
    const vector = c.read16(base + CommonCfg.QUEUE_MSIX_VECTOR);
    this.notifiers.set(q, this.makeNotifier(q));
    return vector;
  }
  enableQueue(q: number): void {
    this.selectQueue(q);
    this.c.write16(this.cb + CommonCfg.QUEUE_ENABLE, 1);
  }
  notifier(q: number): () => void {
    const n = this.notifiers.get(q);
    if (!n) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${q} is not configured`);
    return n;
  }

  /** §4.1.4.4: the notify address is cap.offset + queue_notify_off × notify_off_multiplier. */
  private makeNotifier(q: number): () => void {
    const notifyOff = this.c.read16(this.cb + CommonCfg.QUEUE_NOTIFY_OFF);
    const { window, offset, length, multiplier } = this.layout.notify;
    const at = notifyOff * multiplier;
    if (at + 2 > length) {
      throw new DeviceError('E_CAP_INVALID',
        `${this.address}: queue ${q} notify offset ${notifyOff}×${multiplier} lies outside the ${length}-byte notification area`,
        'the device gave a queue_notify_off it does not have room for');
    }
    const address = offset + at;
    return () => window.write16(address, q);
  }

  // ---- interrupts ----
  enableInterrupts(vectorsWanted: number, handler: (vector: number) => void): number {
    return this.fn.msix.enable(vectorsWanted, handler);
  }
  setConfigVector(vector: number): number {
    this.c.write16(this.cb + CommonCfg.CONFIG_MSIX_VECTOR, vector);
    return this.c.read16(this.cb + CommonCfg.CONFIG_MSIX_VECTOR);
  }
  disableInterrupts(): void {
    if (this.isClosed) return;
    this.setConfigVector(VIRTIO_MSI_NO_VECTOR);
    this.fn.msix.disable();
  }
  /** Reads (and so clears) the ISR status byte (virtio 1.2 §4.1.4.5). */
  readIsr(): number {
    return this.layout.isr.window.read8(this.layout.isr.offset);
  }

  // ---- device configuration (virtio 1.2 §2.5.1, §4.1.4.6); the generation retry is lib/virtio/config.ts ----
  private deviceRegion(offset: number, width: number): VirtioRegion {
    const dev = this.layout.device;
    if (!dev || !Number.isInteger(offset) || offset < 0 || offset + width > dev.length) {
      throw new UsageError('E_INVALID_ARGUMENT',
        `${this.address}: device configuration access at ${offset}+${width} is outside its ${dev?.length ?? 0} bytes`);
    }
    return dev;
  }
  /** config_generation (virtio 1.2 §4.1.4.3). */
  configGeneration(): number {
    return this.c.read8(this.cb + CommonCfg.CONFIG_GENERATION);
  }
  /** One 8/16/32-bit read of the device configuration (§4.1.3.1: accesses of their natural width). */
  readConfig(offset: number, width: ConfigWidth): number {
    const d = this.deviceRegion(offset, width);
    const at = d.offset + offset;
    return width === 1 ? d.window.read8(at) : width === 2 ? d.window.read16(at) : d.window.read32(at) >>> 0;
  }
  /** One 8/16/32-bit store to the device configuration. */
  writeConfig(offset: number, width: ConfigWidth, value: number): void {
    const d = this.deviceRegion(offset, width);
    const at = d.offset + offset;
    if (width === 1) d.window.write8(at, value);
    else if (width === 2) d.window.write16(at, value);
    else d.window.write32(at, value);
  }

  // ---- stop/state: the proposal's registers (PROVISIONAL offsets, lib/spec; docs/provisional-registers.md) and SUSPEND ----

  /** RING_STATE when the common configuration reaches the state registers, DEVICE_STATE when it reaches the mailbox; SUSPEND always. */
  stateFeatures(): readonly number[] {
    const f: number[] = [Feature.SUSPEND];
    if (this.hasStateRegisters) f.push(Feature.RING_STATE);
    if (this.hasMailbox) f.push(Feature.DEVICE_STATE);
    return f;
  }

  /** ring-state (RING_STATE negotiated and the registers present; the mailbox with DEVICE_STATE), then suspend (SUSPEND). */
  stateFacilities(features: bigint): readonly StateFacility[] {
    const out: StateFacility[] = [];
    if (this.hasStateRegisters && hasFeature(features, Feature.RING_STATE)) {
      const mailbox = this.hasMailbox && hasFeature(features, Feature.DEVICE_STATE) ? this.mailbox() : undefined;
      out.push(ringStateFacility(this, this.stateRegisters(), mailbox));
    }
    if (hasFeature(features, Feature.SUSPEND)) out.push(suspendFacility(this));
    return out;
  }

  private get hasStateRegisters(): boolean {
    return this.layout.common.length >= COMMON_CFG_LEN;
  }
  private get hasMailbox(): boolean {
    return this.layout.common.length >= COMMON_CFG_EXT_LEN;
  }

  private stateRegisters(): StateRegisters {
    const c = this.c;
    const base = this.cb;
    return {
      readVqState: (q: number): VqState => {
        this.selectQueue(q);
        return { avail: c.read16(base + CommonCfg.QUEUE_AVAIL_STATE), used: c.read16(base + CommonCfg.QUEUE_USED_STATE) };
      },
      writeVqState: (q: number, state: VqState): void => {
        this.selectQueue(q);
        c.write16(base + CommonCfg.QUEUE_AVAIL_STATE, state.avail);
        c.write16(base + CommonCfg.QUEUE_USED_STATE, state.used);
      },
    };
  }

  /** The DEVICE_STATE mailbox: ADDR, LEN, CMD; CMD reads back 0 or the device's refusal reason. */
  private mailbox(): DeviceStateMailbox {
    const c = this.c;
    const base = this.cb;
    const command = (cmd: number, iova: bigint, length: number): void => {
      write64(c, base + CommonCfg.DEVICE_STATE_ADDR, iova);
      if (cmd === DeviceStateCmd.LOAD) c.write32(base + CommonCfg.DEVICE_STATE_LEN, length);
      c.write16(base + CommonCfg.DEVICE_STATE_CMD, cmd);
      const result = c.read16(base + CommonCfg.DEVICE_STATE_CMD);
      if (result !== 0) {
        const reason = DEVICE_STATE_REFUSAL_REASONS[result] ?? `unknown refusal code 0x${result.toString(16)}`;
        throw new DeviceError('E_STATE_REFUSED', `${this.address} refused DEVICE_STATE ${cmd === DeviceStateCmd.SAVE ? 'SAVE' : 'LOAD'}: ${reason} (CMD read 0x${result.toString(16)})`,
          cmd === DeviceStateCmd.SAVE ? 'SAVE is allowed only while STOP shows' : 'LOAD is allowed only between FEATURES_OK and DRIVER_OK, with a state the device recognises');
      }
    };
    return {
      length: (): number => c.read32(base + CommonCfg.DEVICE_STATE_LEN) >>> 0,
      save: (iova: bigint, capacity: number): number => {
        const length = c.read32(base + CommonCfg.DEVICE_STATE_LEN) >>> 0;
        if (length > capacity) {
          throw new DeviceError('E_STATE_REFUSED', `${this.address} has ${length} bytes of device state, more than the ${capacity}-byte buffer`,
            `a snapshot carries at most ${capacity} bytes of device state: stop with another mechanism (\`--mechanism suspend\` or \`quiesce\`, which take no device state)`);
        }
        if (length > 0) command(DeviceStateCmd.SAVE, iova, length);
        return length;
      },
      load: (iova: bigint, length: number): void => command(DeviceStateCmd.LOAD, iova, length),
    };
  }

  /** Called once when the transport is closed while a device still uses it (its requests then settle at once). */
  onLost(listener: (e: UvirtioError) => void): () => void {
    return this.lostListeners.add(listener);
  }

  /** True once close() ran (see VirtioTransport.closed). */
  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.notifiers.clear();
    const closedError = new DeviceError('E_CLOSED', `${this.address}: the transport was closed under the device`, 'close the driver, not its transport');
    this.lostListeners.emit(closedError);
    this.lostListeners.clear();
    this.fn.close();
  }
}

/** The register windows `layout`'s structures lie in (objects a PciFunction's bar() returned), once each. */
function layoutWindows(layout: VirtioPciLayout): object[] {
  const regions = [layout.common, layout.notify, layout.isr, layout.device];
  return [...new Set(regions.flatMap((r) => (r?.window ? [r.window as object] : [])))];
}

/**
 * Throws UsageError E_DEVICE_IN_USE when an open VirtioPciTransport drives `fn` (or `key`, one of
 * its register windows) already, and E_CLOSED when one was closed (closing the function: it reads
 * as no device any more).
 */
function checkFunctionFree(key: object, fn: PciFunction): void {
  const other = onFunction.get(key);
  if (!other) return;
  if (other.closed) {
    throw new UsageError('E_CLOSED', `${fn.address}: the PCI function was closed (its VirtioPciTransport's close() closes it)`,
      'open the address again (openTransport(address)) or make a new function (the reference device: createSimDevice)');
  }
  throw new UsageError('E_DEVICE_IN_USE', `${fn.address}: a VirtioPciTransport is open on this PCI function already: a second would drive the same registers and reset the device under the first one's driver`,
    'use the open transport (a driver closed with close({ keepTransport: true }), or a VirtioDevice let go with reset(), leaves it open for the next), or close it first');
}

/** §4.1.3.1: 64-bit fields are written as two 32-bit halves, low first. */
function write64(w: RegisterWindow, offset: number, value: bigint): void {
  w.write32(offset, Number(value & 0xffffffffn));
  w.write32(offset + 4, Number((value >> 32n) & 0xffffffffn));
}

/** The methods of a PciFunction the transport relies on, looked for to tell one from a careless argument. */
const PCI_FUNCTION_METHODS = ['configRead8', 'configRead16', 'configRead32', 'configWrite8', 'configWrite16', 'configWrite32', 'bar', 'close'] as const;

/** Throws UsageError E_INVALID_ARGUMENT unless `fn` is an object with a PciFunction's methods (a getter that throws counts as missing). */
function checkPciFunction(fn: unknown): asserts fn is PciFunction {
  const has = (o: object, m: string): boolean => {
    try {
      return typeof (o as Record<string, unknown>)[m] === 'function';
    } catch {
      return false;
    }
  };
  const missing = typeof fn === 'object' && fn !== null ? PCI_FUNCTION_METHODS.filter((m) => !has(fn, m)) : PCI_FUNCTION_METHODS;
  if (missing.length === 0) return;
  const what = typeof fn === 'string' ? `the string ${shown(fn)} (an address, not a PCI function)`
    : typeof fn === 'object' && fn !== null ? `an object without a PCI function's methods (${missing.join(', ')})` : shown(fn);
  throw new UsageError('E_INVALID_ARGUMENT', `new VirtioPciTransport needs a PciFunction, got ${what}`,
    'open a transport with openTransport(address) (it finds and opens the PCI function), or pass a PciFunction (VfioPciFunction, a simulated device\'s fn)');
}

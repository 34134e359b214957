// What every device type of the reference device shares: the options common to all (feature
// offer, completion timing, stop/state facilities, shared memory), the SimDevice handle a test or
// the CLI holds, and how a model becomes a PCI function. A device type (lib/sim/models/*.ts) adds
// its own options, model and handle, and describes itself as a SimModelType.

import { HeapDmaAllocator } from '../mem/dma.js';
import { COMMON_CFG_EXT_LEN, COMMON_CFG_LEN, Feature, bit } from '../spec/index.js';
import { UsageError } from '../errors.js';
import { checkValue, int, optionsObject, type OptionKeys, type OptionSchema } from '../util/options.js';
import { MAX_MSIX_VECTORS } from './pci/config.js';
import { QUEUE_SIZE, STOP_MODE, SimPciFunction, checkCompletion } from './pci/function.js';
import type { QuietPhase } from './virtio/common-cfg.js';
import { clearFaults, injectFault, suppressNotifications } from './virtio/controls.js';
import type { SimFault } from './virtio/faults.js';
import type { DeviceModel } from './virtio/model.js';
import type { Violation } from './virtio/rules.js';
import type { Completion, SimStats, StopMode } from './virtio/types.js';

/** Transport features the device offers besides VERSION_1 (always offered). */
export interface SimOffer {
  /** VIRTIO_F_RING_PACKED (default true). */
  packed?: boolean;
  /** VIRTIO_F_INDIRECT_DESC (default true). */
  indirect?: boolean;
  /** VIRTIO_F_EVENT_IDX (default true). */
  eventIdx?: boolean;
  /** VIRTIO_F_ACCESS_PLATFORM (default true): the device uses IOVAs, which it does. */
  accessPlatform?: boolean;
}

/** The stop/state facilities the device offers (each default false). */
export interface SimStateOffer {
  /** VIRTIO_F_RING_STATE (PROVISIONAL 44): the STOP status bit and the per-queue state registers. */
  ringState?: boolean;
  /** VIRTIO_F_DEVICE_STATE (PROVISIONAL 45): the mailbox for held requests. Only with ringState; defaults to it. */
  deviceState?: boolean;
  /** VIRTIO_F_SUSPEND (virtio 1.4, 43): the two-way SUSPEND status bit. */
  suspend?: boolean;
}

/** Options every device type takes (createSimDevice), besides its `type` and its own. */
export interface SimCommonOptions {
  /** Largest queue size the device allows (default 256; at most 32768, a power of two). */
  queueMaxSize?: number;
  /** Transport features offered besides VERSION_1 (packed, indirect, event idx, access platform: each default true). */
  offer?: SimOffer;
  /** Default 'immediate'. */
  completion?: Completion;
  /** MSI-X table size (default: one per queue plus one for configuration changes). */
  msixVectors?: number;
  /**
   * Memory shared with the driver (default: a new HeapDmaAllocator, closed with the function).
   * One passed in is never closed by the device: a second device on the same memory (a migration
   * target) survives the first one's close().
   */
  dma?: HeapDmaAllocator;
  /** The stop/state facilities offered: RING_STATE, DEVICE_STATE, SUSPEND (each default false; docs/provisional-registers.md). */
  state?: SimStateOffer;
  /** What STOP does with fetched, unfinished requests (default 'drain'); SUSPEND always drains. */
  mode?: StopMode;
}

/** SimCommonOptions' keys (createSimDevice also takes `type` and the device type's own: SimModelType.optionKeys). */
export const SIM_COMMON_OPTION_KEYS: OptionKeys<SimCommonOptions> = {
  queueMaxSize: true, offer: true, completion: true, msixVectors: true, dma: true, state: true, mode: true,
};
const SIM_OFFER_KEYS: OptionKeys<SimOffer> = { packed: true, indirect: true, eventIdx: true, accessPlatform: true };
const SIM_STATE_OFFER_KEYS: OptionKeys<SimStateOffer> = { ringState: true, deviceState: true, suspend: true };

export { QUEUE_SIZE, STOP_MODE };

/** The handle createSimDevice returns: the function, its memory, and the controls a test needs. */
export interface SimDevice {
  /** The PCI function a transport opens: configuration space, BAR 4 with the virtio structures, MSI-X. */
  readonly fn: SimPciFunction;
  /** The memory shared with the driver: rings and buffers live here, addressed by IOVA. */
  readonly dma: HeapDmaAllocator;
  /** Completes every request held in flight (manual or latency completion); returns how many. */
  completeNow(): number;
  /** Requests fetched from the rings and not yet completed. */
  readonly held: number;
  /** Counters since the device was made: notifications, interrupts, completions per queue (live, not a copy). */
  readonly stats: SimStats;
  /** Makes the device misbehave: now, on its next used elements, or until clearFaults() (faults.ts). Each field of `fault` is read once. */
  injectFault(fault: SimFault): void;
  /** Back to normal: pending faults dropped, a stuck reset completes, a held-back STOP / SUSPEND shows. */
  clearFaults(): void;
  /** Every driver rule broken since the device was made, one entry per rule and queue (rules.ts). */
  readonly violations: readonly Violation[];
  /** Forgets the violations recorded so far. */
  clearViolations(): void;
  /** Asks the driver not to notify queue `q` (a polling device) or, with false, to notify again. */
  suppressNotifications(q: number, suppressed: boolean): void;
  /** Why the device set DEVICE_NEEDS_RESET, until the driver resets it. */
  readonly failure: Error | undefined;
  /** Running, or on its way to / in STOP or SUSPEND. */
  readonly phase: QuietPhase;
  /** Why the last DEVICE_STATE command was refused (CMD read its code), until the next command or reset. */
  readonly stateRefusal: string | undefined;
}

/**
 * A device type of the reference device, as lib/sim/models/index.ts registers it: its name, its
 * identity on the bus, its address options and how it builds its model and handle. `O` is its
 * createSimDevice options, `D` its handle.
 */
export interface SimModelType<O extends SimCommonOptions & {
  /** The device type's name, as in sim:NAME. */
  type: string;
}, D extends SimDevice> {
  /** sim:NAME, and `type` in createSimDevice's options. */
  readonly name: O['type'];
  /** virtio device id (virtio 1.2 §5), 1 to 63 (virtio-pci: PCI device id 0x1040 + id, §4.1.2); its model must report the same (checked). */
  readonly deviceId: number;
  /** PCI class code (24 bits) the function shows, as QEMU's virtio-*-pci does. */
  readonly classCode: number;
  /** The keys of its own createSimDevice options, besides `type` and the common ones (any other is refused). */
  readonly optionKeys: OptionKeys<Omit<O, keyof SimCommonOptions | 'type'>>;
  /** Its own options in a sim:NAME?key=value address, besides the common ones (lib/sim/open.ts). */
  readonly addressOptions: OptionSchema;
  /**
   * createSimDevice options from its parsed address options. `source`: the device a migration
   * target takes over from (it may share its storage, as a second daemon on one image would).
   */
  fromAddress(values: Record<string, unknown>, source: SimDevice | undefined): Omit<O, keyof SimCommonOptions | 'type'>;
  /**
   * Checks `options`, builds the model and the handle maker. Throws E_INVALID_ARGUMENT
   * (UsageError) for options that do not fit.
   * @param options createSimDevice's options, `type` included.
   * @param queueMaxSize The largest queue size the device allows, already checked.
   * @returns The model (what the device type does with requests and its configuration space) and
   * `handle`, which wraps the PCI function built around the model in this type's handle.
   */
  create(options: O, queueMaxSize: number): {
    /** What the generic virtio device runs for this type: queues, features, configuration space, requests. */
    model: DeviceModel;
    /**
     * The device type's handle over `fn`, the function built around `model`.
     * @param fn The PCI function createSimDevice built.
     * @returns The handle createSimDevice returns.
     */
    handle(fn: SimPciFunction): D;
  };
}

/**
 * The PCI function for `model`: transport features, MSI-X table, completion and stop mode from
 * the common options. Throws E_INVALID_ARGUMENT (UsageError) for options that do not fit.
 */
export function buildFunction(
  type: SimModelType<SimCommonOptions & { type: string }, SimDevice>, options: SimCommonOptions, model: DeviceModel,
  dma: HeapDmaAllocator, queueMaxSize: number,
): SimPciFunction {
  if (model.deviceType !== type.deviceId) {
    // The registry's id and the model's disagree: a programming error in the device type's file.
    throw new Error(`lib/sim/models: "${type.name}" is registered with virtio device id ${type.deviceId} but its model reports ${model.deviceType}`);
  }
  const offer = optionsObject(options.offer, 'createSimDevice offer', SIM_OFFER_KEYS);
  const state = optionsObject(options.state, 'createSimDevice state', SIM_STATE_OFFER_KEYS);
  const ringState = state.ringState ?? false;
  const deviceState = state.deviceState ?? ringState;
  if (deviceState && !ringState) {
    throw new UsageError('E_INVALID_ARGUMENT', 'state.deviceState needs state.ringState', 'the DEVICE_STATE mailbox is saved while STOP shows');
  }
  const mode = checkValue(STOP_MODE, options.mode ?? 'drain', 'mode');
  const transportFeatures = (offer.packed ?? true ? bit(Feature.RING_PACKED) : 0n)
    | (offer.indirect ?? true ? bit(Feature.INDIRECT_DESC) : 0n)
    | (offer.eventIdx ?? true ? bit(Feature.EVENT_IDX) : 0n)
    | (offer.accessPlatform ?? true ? bit(Feature.ACCESS_PLATFORM) : 0n)
    | (ringState ? bit(Feature.RING_STATE) : 0n)
    | (deviceState ? bit(Feature.DEVICE_STATE) : 0n)
    | (state.suspend ? bit(Feature.SUSPEND) : 0n);
  const msixVectors = checkValue(int(1, MAX_MSIX_VECTORS), options.msixVectors ?? model.queueCount + 1, 'msixVectors');
  const completion = checkCompletion(options.completion ?? 'immediate', 'createSimDevice completion');
  return new SimPciFunction({
    address: `sim:${type.name}`, model, dma, ownsDma: options.dma === undefined, queueMaxSize, transportFeatures, completion,
    stopMode: mode, msixVectors, classCode: type.classCode,
    // The capability covers the provisional registers offered (docs/provisional-registers.md): the mailbox with
    // DEVICE_STATE; without it COMMON_CFG_LEN, the state registers included, as the device always had.
    commonCfgLength: deviceState ? COMMON_CFG_EXT_LEN : COMMON_CFG_LEN,
  });
}

/** The controls every handle has, over the function's virtio device; a device type extends it. */
export class SimDeviceHandle implements SimDevice {
  constructor(readonly fn: SimPciFunction) {}
  get dma(): HeapDmaAllocator {
    return this.fn.dma;
  }
  completeNow(): number {
    return this.fn.device.completeNow();
  }
  get held(): number {
    return this.fn.device.heldCount;
  }
  get stats(): SimStats {
    return this.fn.device.stats;
  }
  injectFault(fault: SimFault): void {
    injectFault(this.fn.device, fault);
  }
  clearFaults(): void {
    clearFaults(this.fn.device);
  }
  get violations(): readonly Violation[] {
    return this.fn.device.violations.list;
  }
  clearViolations(): void {
    this.fn.device.violations.clear();
  }
  suppressNotifications(q: number, suppressed: boolean): void {
    suppressNotifications(this.fn.device, q, suppressed);
  }
  get failure(): Error | undefined {
    return this.fn.device.failure;
  }
  get phase(): QuietPhase {
    return this.fn.device.phase;
  }
  get stateRefusal(): string | undefined {
    return this.fn.device.mailbox.refusal;
  }
}

/** `n` if it is a positive integer; throws E_INVALID_ARGUMENT (UsageError) naming `what` otherwise. */
export function positiveInt(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new UsageError('E_INVALID_ARGUMENT', `${what} must be a positive integer, got ${n}`);
  return n;
}

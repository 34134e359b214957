// The registry of the reference device's device types, built from models/all.ts (one line per
// device type there): SIM_MODELS, and the option and handle types createSimDevice derives from it.

import * as all from './all.js';
import type { SimModelType } from '../common.js';

export * from './all.js';

/**
 * The exports of a module `T` that are device types (shaped like a SimModelType), by export name:
 * the type of SIM_MODELS, from models/all.ts.
 */
export type ModelsIn<T> = { [K in keyof T as T[K] extends ModelShape ? K : never]: T[K] };

/** What marks an export as a device type: the SimModelType members a model class or helper lacks. */
export interface ModelShape {
  /** SimModelType.addressOptions: its sim:NAME?… options. */
  readonly addressOptions: object;
  /** SimModelType.classCode: its PCI class code. */
  readonly classCode: number;
}

function isModelType(v: unknown): v is SimModelType<never, never> {
  return typeof v === 'object' && v !== null && 'addressOptions' in v && 'classCode' in v && 'create' in v;
}

/** Every device type the reference device models, by the name in sim:NAME (each export of all.ts that is a SimModelType). */
export const SIM_MODELS = Object.fromEntries(Object.entries(all).filter(([, v]) => isModelType(v))) as ModelsIn<typeof all>;
for (const [name, model] of Object.entries(SIM_MODELS) as [string, { name: string; deviceId: number }][]) {
  // A model exported under another name than its sim: name would make sim:NAME open the wrong device type.
  if (model.name !== name) throw new Error(`lib/sim/models: the device type exported as "${name}" calls itself "${model.name}"`);
  // virtio 1.2 §4.1.2: a modern virtio-pci function's PCI device id is 0x1040 + the virtio device id, at most 0x107f.
  if (!Number.isInteger(model.deviceId) || model.deviceId < 1 || model.deviceId > 0x3f) {
    throw new Error(`lib/sim/models: "${name}" has virtio device id ${model.deviceId}; virtio-pci carries ids 1 to 63 (PCI device id 0x1040 + id)`);
  }
}

/** A device type's name: 'blk' | 'net' | 'rng'. */
export type SimDeviceType = keyof typeof SIM_MODELS;

type Registered = (typeof SIM_MODELS)[SimDeviceType];
/** createSimDevice's options for the device type `M` (an entry of SIM_MODELS): what its `create` takes. */
export type SimOptionsOf<M> = M extends {
  /**
   * The device type's builder (SimModelType.create); the match reads only its first parameter.
   * @param options Inferred: the createSimDevice options of the device type.
   * @param queueMaxSize The largest queue size (not part of the match).
   * @returns Not part of the match.
   */
  create(options: infer O, queueMaxSize: number): unknown;
} ? O : never;
/** The handle createSimDevice returns for the device type `M` (an entry of SIM_MODELS): what its `handle` makes. */
export type SimDeviceOf<M> = M extends {
  /**
   * The device type's builder (SimModelType.create); the match reads only what `handle` returns.
   * @param options Its options (not part of the match).
   * @param queueMaxSize The largest queue size (not part of the match).
   * @returns The model and the handle maker.
   */
  create(options: never, queueMaxSize: number): {
    /**
     * Wraps the PCI function in the device type's handle.
     * @param fn The PCI function createSimDevice built (not part of the match).
     * @returns Inferred: the handle type.
     */
    handle(fn: never): infer D;
  };
} ? D : never;

/** createSimDevice's options, for any registered device type. */
export type SimOptions = SimOptionsOf<Registered>;
/** A handle of any registered device type (narrow it by `type`). */
export type AnySimDevice = SimDeviceOf<Registered>;

/** Whether `name` is a registered device type (own keys only: not "toString"). */
export function isSimDeviceType(name: string): name is SimDeviceType {
  return Object.hasOwn(SIM_MODELS, name);
}

export { BLK_LOG_LENGTH, type BlkRequestRecord } from './blk-model.js';

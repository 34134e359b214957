// The reference device's device types: one line each. A new device type is a file in this folder
// exporting a SimModelType (lib/sim/common.ts: options, address options, class code, model,
// handle) and one line here; createSimDevice, sim:NAME addresses and their options follow.

import { blk } from './blk.js';
import { net } from './net.js';
import { rng } from './rng.js';

/** Every device type the reference device models, by the name in sim:NAME. */
export const SIM_MODELS = {
  blk,
  net,
  rng,
} as const;

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

export type { SimBlkOptions, SimBlkDevice } from './blk.js';
export type { SimNetOptions, SimNetDevice } from './net.js';
export type { SimRngOptions, SimRngDevice } from './rng.js';
export type { BlkRequestRecord } from './blk-model.js';

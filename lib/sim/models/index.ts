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
/** createSimDevice's options for the device type `M`. */
export type SimOptionsOf<M> = M extends { create(options: infer O, queueMaxSize: number): unknown } ? O : never;
/** The handle createSimDevice returns for the device type `M`. */
export type SimDeviceOf<M> = M extends { create(options: never, queueMaxSize: number): { handle(fn: never): infer D } } ? D : never;

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

// The reference device's device types, one line each. A device type is a file in this folder that
// exports its SimModelType (lib/sim/common.ts) under the name used in sim:NAME, with its option
// and handle types; its line here is all the registration it needs (models/index.ts builds
// SIM_MODELS from these exports; createSimDevice, sim:NAME addresses and their options follow).

export * from './blk.js';
export * from './net.js';
export * from './rng.js';
export * from './console.js';

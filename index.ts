// The package entry: the SDK (lib/) and the drivers built on it (drivers/).
export * from './lib/index.js';
export { BlkDriver, type BlkOpenOptions, type BlkWrite, type BlkLimits, type RangeLimits, type SectorRange } from './drivers/blk/index.js';
export { NetDriver, decodeNetHeader, encodeNetHeader, type NetOpenOptions, type NetHeader, type ReceivedFrame } from './drivers/net/index.js';
export { RngDriver, type RngOpenOptions } from './drivers/rng/index.js';

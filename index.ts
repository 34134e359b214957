// The package entry: the SDK (lib/) and the drivers built on it (drivers/).
export * from './lib/index.js';
export { BlkDriver, type BlkOpenOptions } from './drivers/blk/index.js';
export { NetDriver, type NetOpenOptions, type ReceivedFrame } from './drivers/net/index.js';

// The package entry ("uvirtio"): the SDK (lib/) and the drivers built on it (drivers/).
// The reference device's internals are the "uvirtio/sim" subpath (lib/sim/index.ts).
export * from './lib/index.js';
export { StatefulDriver } from './drivers/stateful.js';
export { BlkDriver, type BlkOpenOptions, type BlkWrite, type BlkLimits, type RangeLimits, type SectorRange } from './drivers/blk/index.js';
export { NetDriver, decodeNetHeader, encodeNetHeader, type NetOpenOptions, type NetHeader, type ReceivedFrame } from './drivers/net/index.js';
export { RngDriver, RNG_MAX_READ_BYTES, type RngOpenOptions } from './drivers/rng/index.js';
export { ConsoleDriver, ConsolePort, CONSOLE_PORT_WAIT_MS, CONSOLE_RECEIVE_QUIET_MS, type ConsoleOpenOptions, type ConsoleSize } from './drivers/console/index.js';

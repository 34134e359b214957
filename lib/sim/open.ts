// The sim: opener (registered in lib/schemes.ts, loaded on first use): a reference device from its
// address, e.g. sim:blk?layout=packed&mode=hold&queues=4. Options common to every device type:
//   layout=split|packed      split: the device does not offer RING_PACKED; packed: the driver should use it
//   state=ring-state|suspend|all|none   stop/state support offered (default all: RING_STATE,
//                            DEVICE_STATE and SUSPEND)
//   mode=drain|hold          what STOP does with requests in flight (default drain)
//   latency=MS               completion latency, so requests are in flight at a stop (default 0)
//   completion=immediate|manual
//   queuesize=N indirect=0|1 eventidx=0|1
//   fault=KIND[,KIND…]       misbehaviour from the start (ADDRESS_FAULTS below)
// and each device type's own (its addressOptions in lib/sim/models/*.ts):
//   blk: queues=N capacity=SECTORS ro=1 discard=1 writezeroes=1 blksize=BYTES segmax=N sizemax=BYTES
//   net: mac=52:54:00:12:34:56 mergeable=1 pairs=N (control queue + MQ with N pairs)
//   rng: seed=N
// With shareWith (a migration target) the new device uses the source's memory (and a blk its
// disk), so the source's rings are reachable at the same addresses. The opener gives back the
// PCI function; lib/open.ts puts the virtio-pci transport on it (the device side never imports
// the driver side).

import { UsageError } from '../errors.js';
import type { Layout } from '../spec/ring.js';
import { badAddress, choice, flag, int, listOf, parseOptions, type OptionSchema } from '../util/options.js';
import { QUEUE_SIZE, STOP_MODE, type SimCommonOptions, type SimDevice, type SimModelType } from './common.js';
import { createSimDevice } from './index.js';
import { SIM_MODELS, isSimDeviceType, type AnySimDevice, type SimOptions } from './models/index.js';
import type { SimPciFunction } from './pci/function.js';
import type { FaultKind } from './virtio/faults.js';

/**
 * fault=KIND[,KIND…]: misbehaviour the reference device shows from the start (virtio/faults.ts),
 * to rehearse failure handling from a script — e.g. a --to target whose FEATURES_OK never sticks.
 */
const ADDRESS_FAULTS = [
  'features-refuse', 'device-state-refuse', 'config-churn', 'completion-silence', 'interrupt-silence', 'stop-stuck', 'state-lie',
  'reserved-feature',
] as const satisfies readonly FaultKind[];

/** Options every sim:NAME address takes. */
const COMMON_OPTIONS = {
  layout: choice('split', 'packed'),
  state: choice('ring-state', 'suspend', 'all', 'none'),
  mode: STOP_MODE,
  latency: int(0, 10_000),
  completion: choice('immediate', 'manual'),
  queuesize: QUEUE_SIZE,
  indirect: flag(),
  eventidx: flag(),
  fault: listOf(...ADDRESS_FAULTS),
} satisfies OptionSchema;

/** What the sim: opener gives lib/open.ts: the function to put a transport on, and the device. */
export interface OpenedSim {
  /** The address, normalised. */
  address: string;
  /** The reference device's PCI function, for the virtio-pci transport. */
  fn: SimPciFunction;
  /** The reference device's handle (controls, statistics, violations). */
  sim: AnySimDevice;
  /** The layout the address asks for (layout=…), else undefined. */
  layout?: Layout;
}

/**
 * Opens `a` (target: a device type in SIM_MODELS). Throws E_BAD_ADDRESS (UsageError) for an
 * unknown option, a value that does not fit, options the device refuses together, or a
 * `shareWith` that is not a reference device.
 */
export function open(a: { address: string; target: string; options: Readonly<Record<string, string>> }, shareWith?: { address: string; sim?: SimDevice }): OpenedSim {
  if (!isSimDeviceType(a.target)) throw badAddress(a.address, `the reference device models ${Object.keys(SIM_MODELS).join(', ')}`, 'sim:NAME');
  const type = SIM_MODELS[a.target] as unknown as SimModelType<SimCommonOptions & { type: string }, SimDevice>;
  const hint = `sim:${type.name} takes ${[...Object.keys(COMMON_OPTIONS), ...Object.keys(type.addressOptions)].join(', ')} (see lib/sim/open.ts)`;
  const o = parseOptions(a.options, { ...COMMON_OPTIONS, ...type.addressOptions }, { address: a.address, hint });
  const own = Object.fromEntries(Object.entries(o).filter(([k]) => !Object.hasOwn(COMMON_OPTIONS, k)));
  if (shareWith && !shareWith.sim) {
    throw badAddress(a.address, `a reference device can only take over from another reference device, not ${shareWith.address}`, hint);
  }
  const state = o.state ?? 'all';
  const latency = o.latency ?? 0;
  const common: SimCommonOptions = {
    ...(o.queuesize !== undefined ? { queueMaxSize: o.queuesize } : {}),
    offer: { packed: o.layout !== 'split', indirect: o.indirect ?? true, eventIdx: o.eventidx ?? true },
    completion: o.completion === 'manual' ? 'manual' : latency > 0 ? { latencyMs: latency } : 'immediate',
    state: { ringState: state === 'ring-state' || state === 'all', suspend: state === 'suspend' || state === 'all' },
    mode: o.mode ?? 'drain',
    ...(shareWith?.sim ? { dma: shareWith.sim.dma } : {}),
  };
  let sim: AnySimDevice;
  try {
    sim = createSimDevice({ ...common, ...type.fromAddress(own, shareWith?.sim), type: type.name } as SimOptions);
  } catch (e) {
    // The reference device's own checks (blk_size a power of two, …): the address is what was wrong.
    if (e instanceof UsageError) throw badAddress(a.address, e.message, hint);
    throw e;
  }
  for (const kind of o.fault ?? []) sim.injectFault({ kind });
  return { address: a.address, fn: sim.fn, sim, ...(o.layout ? { layout: o.layout } : {}) };
}

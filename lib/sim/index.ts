// The reference device: `createSimDevice({ type: 'blk' })` gives an in-process virtio-pci function
// (the CLI's `sim:blk` / `sim:net` / `sim:rng`) and the controls a test needs — completion timing,
// fault injection, notification suppression, statistics — plus the memory it shares with the
// driver. With `state` it offers the proposal's STOP + virtqueue state (RING_STATE), the
// DEVICE_STATE mailbox and virtio 1.4 SUSPEND (docs/provisional-registers.md).
//
// It is a strict device: `violations` lists every driver rule broken (virtio/rules.ts), `failure`
// says why it set DEVICE_NEEDS_RESET. `injectFault` makes it misbehave (virtio/faults.ts);
// `clearFaults` undoes it.
//
// Read it top down: this file and common.ts (what every device type shares), models/ (one file
// per device type, registered in models/index.ts), pci/ (the PCI function: configuration space,
// BAR 4, MSI-X), virtio/ (the generic device: status, common configuration, queues and rings,
// the engine serving them, quiet states, the DEVICE_STATE mailbox, rules and faults), and open.ts
// (sim: addresses).

import { HeapDmaAllocator } from '../mem/dma.js';
import { UsageError } from '../errors.js';
import { QUEUE_SIZE, SIM_COMMON_OPTION_KEYS, buildFunction, type SimCommonOptions, type SimDevice, type SimModelType } from './common.js';
import { SIM_MODELS, isSimDeviceType, type SimDeviceOf, type SimOptions } from './models/index.js';
import { checkValue, optionsObject, type OptionKeys } from '../util/options.js';
import { safeIsArray, shown } from '../util/shown.js';

export type { Completion, SimStats, StopMode } from './virtio/types.js';
export {
  BAD_BLK_STATUS, FAULT_KINDS, SHORT_NET_RX_LEN, type FaultKind, type SimFault, type ReplyFault, type ImmediateFault, type StickyFault,
} from './virtio/faults.js';
export { RULES, RULE_GROUPS, type Rule, type RuleAction, type RuleGroup, type RuleId, type Violation } from './virtio/rules.js';
export type { QuietPhase } from './virtio/common-cfg.js';
export {
  DEVICE_STATE_MAGIC, DEVICE_STATE_VERSION, decodeDeviceState, encodeDeviceState, type HeldRequest, type HeldSegment, type DeviceStateLimits,
} from './virtio/device-state.js';
export type { UsedFault } from './virtio/ring/chain.js';
export type { OptionKeys } from '../util/options.js';
export { SimPciFunction } from './pci/function.js';
export type { SimOffer, SimStateOffer, SimCommonOptions, SimDevice, SimModelType } from './common.js';
// Every device type's SimModelType, option and handle types (models/all.ts), and the registry.
export * from './models/index.js';

/**
 * A reference device of `options.type` (a name in SIM_MODELS), as a PCI function with its
 * controls. Throws E_INVALID_ARGUMENT (UsageError) for an unknown type, a key the type's options
 * do not have (at the top level or in `offer`, `state` and the type's own nested options; the
 * closest spelling is the hint) or options that do not fit (queueMaxSize not a power of two from
 * 2 to 32768, blkSize, mode, a completion other than 'immediate', 'manual' or { latencyMs ≥ 0 },
 * …). Each option, nested ones included, is read once: the checks and the device use that value.
 */
export function createSimDevice<O extends SimOptions>(options: O): SimDeviceOf<(typeof SIM_MODELS)[O['type']]> {
  if (typeof options !== 'object' || options === null || safeIsArray(options)) {
    throw new UsageError('E_INVALID_ARGUMENT', `createSimDevice options must be an object { type, … }, got ${shown(options)}`, `use { type: ${Object.keys(SIM_MODELS).map((n) => `'${n}'`).join(' | ')} }`);
  }
  const given: unknown = (options as { type: unknown }).type;
  const name = typeof given === 'string' ? given : shown(given);
  if (!isSimDeviceType(name) || typeof given !== 'string') {
    throw new UsageError('E_INVALID_ARGUMENT', `unknown device type ${name}`, `use ${Object.keys(SIM_MODELS).map((n) => `'${n}'`).join(', ')}`);
  }
  const type = SIM_MODELS[name] as unknown as SimModelType<SimCommonOptions & { type: string }, SimDevice>;
  // Read once, into a plain copy (`type` was read above): every check and the device use the copy,
  // so a getter or a Proxy cannot answer the check one value and the device another.
  const known: OptionKeys<SimCommonOptions & { type: string }> = { type: true, ...SIM_COMMON_OPTION_KEYS, ...type.optionKeys };
  const copy = optionsObject(options as SimCommonOptions & { type: string }, `createSimDevice options (type '${name}')`, known, { type: given });
  const queueMaxSize = checkValue(QUEUE_SIZE, copy.queueMaxSize ?? 256, 'queueMaxSize');
  const { model, handle } = type.create(copy, queueMaxSize);
  const dma = copy.dma ?? new HeapDmaAllocator();
  return handle(buildFunction(type, copy, model, dma, queueMaxSize)) as SimDeviceOf<(typeof SIM_MODELS)[O['type']]>;
}

// Feature negotiation (virtio 1.2 §2.2, §3.1.1 steps 4–6): the driver accepts the subset of the
// device's offer that it implements, never a bit it does not.

import { Feature, bit, featureNames, hasFeature } from '../spec/index.js';
import { DeviceError, UsageError } from '../errors.js';
import type { Layout } from './queue/types.js';
import { optionsObject, type OptionKeys } from '../util/options.js';

/**
 * What a driver wants from feature negotiation (virtio 1.2 §2.2, §3.1.1 steps 4–6): device-type bits
 * it requires or can use, and its choices for the transport bits the SDK implements. Bit numbers are
 * 0–127; transport bits (24–49) in `required`/`optional` are refused with E_INVALID_ARGUMENT, a
 * required bit the device does not offer with E_FEATURE_MISSING.
 */
export interface FeaturePolicy {
  /** Device-type feature bits the driver cannot work without. */
  required?: readonly number[];
  /** Device-type feature bits the driver implements and uses when offered. */
  optional?: readonly number[];
  /** Ring layout: 'packed' requires RING_PACKED, 'split' refuses it, 'auto' (default) takes packed when offered. */
  layout?: Layout | 'auto';
  /** Accept INDIRECT_DESC when offered (default true). */
  indirect?: boolean;
  /** Accept EVENT_IDX when offered (default true). */
  eventIdx?: boolean;
  /** Transport bits that a higher layer of the SDK implements (e.g. RING_STATE, SUSPEND); accepted when offered. */
  transportExtras?: readonly number[];
}

/** FeaturePolicy's keys: any other is refused (lib/util/options.ts optionsObject). */
export const FEATURE_POLICY_KEYS: OptionKeys<FeaturePolicy> = { required: true, optional: true, layout: true, indirect: true, eventIdx: true, transportExtras: true };

/**
 * The transport bits the SDK implements are accepted one by one in negotiateFeatures (VERSION_1,
 * ACCESS_PLATFORM, RING_PACKED, INDIRECT_DESC, EVENT_IDX), plus these, which a higher layer opts
 * into through `transportExtras`. Anything else in 24–49 (IN_ORDER, NOTIFICATION_DATA, RING_RESET,
 * …) is never accepted, whatever the caller asks.
 */
const EXTRA_TRANSPORT_BITS: ReadonlySet<number> = new Set([Feature.RING_STATE, Feature.DEVICE_STATE, Feature.SUSPEND]);

function isTransportBit(n: number): boolean {
  return n >= 24 && n <= 49;
}

/** The outcome of negotiateFeatures: what the driver writes to driver_feature, and the ring layout that implies. */
export interface Negotiated {
  /** The accepted feature bits (a subset of the offer), bit n as 1n << n. */
  features: bigint;
  /** 'packed' when VIRTIO_F_RING_PACKED was accepted, else 'split'. */
  layout: Layout;
}

/**
 * Computes the features to write to the device, or throws naming what is missing
 * (E_FEATURE_MISSING); E_INVALID_ARGUMENT for a policy that is not an object, has a key
 * FeaturePolicy does not (a misspelt `requried`), or names a bit it may not.
 */
export function negotiateFeatures(offered: bigint, policy: FeaturePolicy, deviceType?: number, where = 'device'): Negotiated {
  policy = optionsObject(policy, 'negotiateFeatures policy', FEATURE_POLICY_KEYS);
  const required = policy.required ?? [];
  const optional = policy.optional ?? [];
  for (const n of [...required, ...optional]) {
    if (!Number.isInteger(n) || n < 0 || n > 127) {
      throw new UsageError('E_INVALID_ARGUMENT', `feature bit ${n} is not a bit number (0–127)`);
    }
    if (isTransportBit(n)) {
      throw new UsageError('E_INVALID_ARGUMENT',
        `feature bit ${n} (${featureNames(bit(n))}) is a transport bit; the SDK decides those`,
        'use the policy\'s layout, indirect and eventIdx options');
    }
  }
  for (const n of policy.transportExtras ?? []) {
    if (!EXTRA_TRANSPORT_BITS.has(n)) {
      throw new UsageError('E_INVALID_ARGUMENT', `the SDK does not implement transport feature ${featureNames(bit(n))}`);
    }
  }
  if (!hasFeature(offered, Feature.VERSION_1)) {
    throw new DeviceError('E_FEATURE_MISSING', `${where} does not offer VERSION_1: it is a legacy-only device`,
      'uvirtio drives modern (virtio 1.0+) devices; for QEMU use disable-legacy=on or a modern device');
  }
  const missing = required.filter((n) => !hasFeature(offered, n));
  if (missing.length > 0) {
    const names = featureNames(missing.reduce((m, n) => m | bit(n), 0n), deviceType);
    throw new DeviceError('E_FEATURE_MISSING', `${where} does not offer required feature${missing.length > 1 ? 's' : ''} ${names}`,
      `the device offers ${featureNames(offered, deviceType)}`);
  }
  const layoutWanted = policy.layout ?? 'auto';
  const packedOffered = hasFeature(offered, Feature.RING_PACKED);
  if (layoutWanted === 'packed' && !packedOffered) {
    throw new DeviceError('E_FEATURE_MISSING', `${where} does not offer RING_PACKED, and the packed layout was asked for`,
      'ask for layout "split" or "auto"; for QEMU add packed=on to the device');
  }
  const layout: Layout = layoutWanted === 'split' || !packedOffered ? 'split' : 'packed';

  let accept = bit(Feature.VERSION_1);
  // With ACCESS_PLATFORM the device uses the platform's IOMMU addresses; every DmaAllocator hands
  // out exactly those, so accepting it is always right (virtio 1.2 §6.1: a driver SHOULD accept it).
  if (hasFeature(offered, Feature.ACCESS_PLATFORM)) accept |= bit(Feature.ACCESS_PLATFORM);
  if (layout === 'packed') accept |= bit(Feature.RING_PACKED);
  if (policy.indirect !== false && hasFeature(offered, Feature.INDIRECT_DESC)) accept |= bit(Feature.INDIRECT_DESC);
  if (policy.eventIdx !== false && hasFeature(offered, Feature.EVENT_IDX)) accept |= bit(Feature.EVENT_IDX);
  for (const n of policy.transportExtras ?? []) if (hasFeature(offered, n)) accept |= bit(n);
  for (const n of [...required, ...optional]) if (hasFeature(offered, n)) accept |= bit(n);
  return { features: accept, layout };
}

// Feature bits (virtio 1.2 §2.2, §6): what the offer itself says, read again by each check.

import { DeviceType, Feature, NetFeature, featureNames, hasFeature } from '../../../lib/spec/index.js';
import { fail, pass, type Check } from '../types.js';

/**
 * Transport bits some spec (or the proposal) defines, in the ranges §6 reserves for the transport
 * (24–40) and for future extensions (41–49): any other offered bit there is a reserved bit.
 */
const DEFINED_TRANSPORT_BITS: ReadonlySet<number> = new Set(Object.values(Feature));

/**
 * "Feature X requires Y" as the device-type sections state them: a device must not offer X
 * without Y (virtio 1.2 §2.2.2). net: §5.1.3.1; the proposal's DEVICE_STATE needs RING_STATE.
 */
const REQUIRES: Readonly<Record<number, readonly (readonly [number, number])[]>> = {
  [DeviceType.NET]: [
    [NetFeature.GUEST_TSO4, NetFeature.GUEST_CSUM], [NetFeature.GUEST_TSO6, NetFeature.GUEST_CSUM],
    [NetFeature.GUEST_ECN, NetFeature.GUEST_TSO4], [NetFeature.GUEST_UFO, NetFeature.GUEST_CSUM],
    [NetFeature.HOST_TSO4, NetFeature.CSUM], [NetFeature.HOST_TSO6, NetFeature.CSUM],
    [NetFeature.HOST_ECN, NetFeature.HOST_TSO4], [NetFeature.HOST_UFO, NetFeature.CSUM],
    [NetFeature.CTRL_RX, NetFeature.CTRL_VQ], [NetFeature.CTRL_VLAN, NetFeature.CTRL_VQ],
    [NetFeature.GUEST_ANNOUNCE, NetFeature.CTRL_VQ], [NetFeature.MQ, NetFeature.CTRL_VQ],
    [NetFeature.CTRL_MAC_ADDR, NetFeature.CTRL_VQ], [NetFeature.CTRL_GUEST_OFFLOADS, NetFeature.CTRL_VQ],
  ],
};

/** Feature-bit checks (virtio 1.2 §2.2, §6) on the offer as read. */
export const FEATURE_CHECKS: readonly Check[] = [
  {
    id: 'features.version-1', section: '6.1', level: 'MUST',
    clause: 'a (non-legacy) device offers VIRTIO_F_VERSION_1',
    does: 'reads the 128 device feature bits and looks for bit 32',
    async run(ctx) {
      return hasFeature(ctx.t.deviceFeatures(), Feature.VERSION_1) ? pass('VERSION_1 offered') : fail('VIRTIO_F_VERSION_1 (bit 32) is not offered');
    },
  },
  {
    id: 'features.no-reserved', section: '2.2, 6', level: 'SHOULD',
    clause: 'the device offers no feature bit the spec reserves (transport range 24–49 bits no version defines, bits 128 and above)',
    does: 'looks for offered bits in 24–49 that no spec version nor the proposal defines, and above 127',
    async run(ctx) {
      const offered = ctx.t.deviceFeatures();
      const reserved: number[] = [];
      for (let n = 24; n <= 49; n++) if (hasFeature(offered, n) && !DEFINED_TRANSPORT_BITS.has(n)) reserved.push(n);
      if (offered >> 128n) reserved.push(128);
      return reserved.length ? fail(`reserved bit(s) offered: ${reserved.join(', ')}`) : pass('no reserved bit offered');
    },
  },
  {
    id: 'features.dependencies', section: '2.2.2', level: 'MUST',
    clause: 'the device offers no feature without the features it requires',
    does: 'checks each offered bit against the "requires" rules of its device type (net §5.1.3.1) and the proposal (DEVICE_STATE needs RING_STATE)',
    async run(ctx) {
      const rules = [[Feature.DEVICE_STATE, Feature.RING_STATE] as const, ...(REQUIRES[ctx.t.deviceType] ?? [])];
      const offered = ctx.t.deviceFeatures();
      const broken = rules.filter(([f, r]) => hasFeature(offered, f) && !hasFeature(offered, r));
      const name = (n: number): string => featureNames(1n << BigInt(n), ctx.t.deviceType);
      if (broken.length) return fail(broken.map(([f, r]) => `${name(f)} offered without ${name(r)}`).join('; '));
      return pass(`${rules.length} rules hold`);
    },
  },
];

// Device status, feature bits and device ids (virtio 1.2 §2.1, §5, §6; SUSPEND from 1.4; STOP,
// RING_STATE and DEVICE_STATE provisional — docs/provisional-registers.md). Part of the ground
// layer: imports nothing.

// ---- Device status field (virtio 1.2 §2.1; SUSPEND from 1.4 §2.1) ----
export const Status = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  /** virtio 1.4 §2.1: two-way; the device shows it once quiet. */
  SUSPEND: 16,
  /** PROVISIONAL (proposal): one-way; only a reset leaves it. */
  STOP: 0x20,
  DEVICE_NEEDS_RESET: 64,
  FAILED: 128,
} as const;

// ---- Transport feature bits (virtio 1.2 §6, 1.4 §6) ----
export const Feature = {
  NOTIFY_ON_EMPTY: 24,
  ANY_LAYOUT: 27,
  INDIRECT_DESC: 28,
  EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  NOTIF_CONFIG_DATA: 39,
  RING_RESET: 40,
  ADMIN_VQ: 41,
  SUSPEND: 43,
  /** PROVISIONAL (proposal): 40, 41 and 43 are taken; 44–49 are reserved in 1.4. */
  RING_STATE: 44,
  /**
   * PROVISIONAL (uvirtio extension, on top of the proposal's "device-specific state"): the device
   * can save and load extra state (e.g. requests fetched but not finished) through a DMA mailbox,
   * registers DEVICE_STATE_* below. Only with RING_STATE.
   */
  DEVICE_STATE: 45,
} as const;
export type FeatureName = keyof typeof Feature;

/** Device-type feature bits, by device id (virtio 1.2 §5.1.3 net, §5.2.3 blk). */
export const BlkFeature = {
  SIZE_MAX: 1, SEG_MAX: 2, GEOMETRY: 4, RO: 5, BLK_SIZE: 6, FLUSH: 9, TOPOLOGY: 10,
  CONFIG_WCE: 11, MQ: 12, DISCARD: 13, WRITE_ZEROES: 14,
} as const;
export const NetFeature = {
  CSUM: 0, GUEST_CSUM: 1, CTRL_GUEST_OFFLOADS: 2, MTU: 3, MAC: 5, GUEST_TSO4: 7, GUEST_TSO6: 8, GUEST_ECN: 9,
  GUEST_UFO: 10, HOST_TSO4: 11, HOST_TSO6: 12, HOST_ECN: 13, HOST_UFO: 14, MRG_RXBUF: 15, STATUS: 16,
  CTRL_VQ: 17, CTRL_RX: 18, CTRL_VLAN: 19, CTRL_RX_EXTRA: 20, GUEST_ANNOUNCE: 21, MQ: 22, CTRL_MAC_ADDR: 23,
} as const;

// ---- Device ids (virtio 1.2 §5) ----
export const DeviceType = { NET: 1, BLK: 2, CONSOLE: 3, RNG: 4 } as const;
export type DeviceTypeId = number;
const deviceTypeNames: Record<number, string> = { 1: 'net', 2: 'blk', 3: 'console', 4: 'rng', 16: 'gpu', 18: 'input', 19: 'vsock' };
export function deviceTypeName(id: number): string {
  return deviceTypeNames[id] ?? `type-${id}`;
}

// ---- Feature masks ----
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}
export function hasFeature(mask: bigint, n: number): boolean {
  return (mask & bit(n)) !== 0n;
}

const transportNames = new Map<number, string>(Object.entries(Feature).map(([k, v]) => [v, k]));
const deviceFeatureNames: Record<number, Map<number, string>> = {
  [DeviceType.BLK]: new Map(Object.entries(BlkFeature).map(([k, v]) => [v, k])),
  [DeviceType.NET]: new Map(Object.entries(NetFeature).map(([k, v]) => [v, k])),
};

/**
 * Names for people: `VERSION_1|RING_PACKED|bit50`. Device-type bits (0–23) are named when the
 * device type is given, else printed as `bitN`.
 */
export function featureNames(mask: bigint, deviceType?: number): string {
  const names: string[] = [];
  const deviceNames = deviceType === undefined ? undefined : deviceFeatureNames[deviceType];
  for (let n = 0; n < 128 && mask >> BigInt(n) !== 0n; n++) {
    if (!hasFeature(mask, n)) continue;
    const name = (n < 24 ? deviceNames?.get(n) : transportNames.get(n)) ?? `bit${n}`;
    names.push(name);
  }
  return names.length === 0 ? '(none)' : names.join('|');
}

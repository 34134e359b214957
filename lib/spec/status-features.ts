// Device status, feature bits and device ids (virtio 1.2 §2.1, §5, §6; SUSPEND from 1.4; STOP,
// RING_STATE and DEVICE_STATE provisional — docs/provisional-registers.md). Part of the ground
// layer: imports nothing.

import { ConsoleFeature } from './console.js';

// ---- Device status field (virtio 1.2 §2.1; SUSPEND from 1.4 §2.1) ----
/** Bits of the device status field (virtio 1.2 §2.1). A reset writes 0. */
export const Status = {
  /** The driver has noticed the device (§2.1). */
  ACKNOWLEDGE: 1,
  /** The driver knows how to drive the device (§2.1). */
  DRIVER: 2,
  /** The driver is set up and ready to drive the device (§2.1). */
  DRIVER_OK: 4,
  /** The driver has acknowledged the features it understands; feature negotiation is over (§2.1, §3.1.1). */
  FEATURES_OK: 8,
  /** virtio 1.4 §2.1: two-way; the device shows it once quiet. */
  SUSPEND: 16,
  /** PROVISIONAL (proposal, docs/provisional-registers.md#feature-and-status-bits): one-way; only a reset leaves it. */
  STOP: 0x20,
  /** The device hit an error it cannot recover from without a reset (§2.1.2). */
  DEVICE_NEEDS_RESET: 64,
  /** The driver gave up on the device (§2.1). */
  FAILED: 128,
} as const;

// ---- Transport feature bits (virtio 1.2 §6, 1.4 §6) ----
/** Feature bit numbers reserved for the transport and the rings, 24–49 (virtio 1.2 §6). */
export const Feature = {
  /** Legacy: notify even when notifications are suppressed, once the available ring is empty (§6.3). */
  NOTIFY_ON_EMPTY: 24,
  /** Legacy: no constraint on how a request is split into descriptors (§6.3). */
  ANY_LAYOUT: 27,
  /** Indirect descriptor tables (§2.7.5.3, §2.8.19). */
  INDIRECT_DESC: 28,
  /** The used_event / avail_event fields (§2.7.7, §2.7.10). */
  EVENT_IDX: 29,
  /** Compliance with virtio 1.x; a modern driver must accept it (§6). */
  VERSION_1: 32,
  /** The device uses platform (IOMMU) addresses: give it IOVAs (§6). */
  ACCESS_PLATFORM: 33,
  /** The packed ring layout (§2.8). */
  RING_PACKED: 34,
  /** Buffers are used in the order they were made available (§6). */
  IN_ORDER: 35,
  /** Memory accesses need the platform's ordering, not just a compiler barrier (§6). */
  ORDER_PLATFORM: 36,
  /** The device supports single-root I/O virtualisation (§6). */
  SR_IOV: 37,
  /** The driver passes extra data in its notifications (§6, §2.9). */
  NOTIFICATION_DATA: 38,
  /** The driver notifies with the device-given queue_notif_config_data (virtio 1.2 §6). */
  NOTIF_CONFIG_DATA: 39,
  /** Individual queues can be reset (virtio 1.2 §2.6.1). */
  RING_RESET: 40,
  /** The device has an administration virtqueue (virtio 1.3 §2.12). */
  ADMIN_VQ: 41,
  /** virtio 1.4: the SUSPEND status bit. */
  SUSPEND: 43,
  /** PROVISIONAL (proposal): 40, 41 and 43 are taken; 44–49 are reserved in 1.4. */
  RING_STATE: 44,
  /**
   * PROVISIONAL (uvirtio extension, on top of the proposal's "device-specific state"): the device
   * can save and load extra state (e.g. requests fetched but not finished) through a DMA mailbox,
   * registers DEVICE_STATE_* (docs/provisional-registers.md#device-state). Only with RING_STATE.
   */
  DEVICE_STATE: 45,
} as const;
/** The name of a transport feature bit, e.g. "VERSION_1". */
export type FeatureName = keyof typeof Feature;

/** virtio-blk feature bits (virtio 1.2 §5.2.3). */
export const BlkFeature = {
  /** size_max in the configuration: the largest segment, bytes. */
  SIZE_MAX: 1,
  /** seg_max in the configuration: the most segments in a request. */
  SEG_MAX: 2,
  /** The legacy disk geometry in the configuration. */
  GEOMETRY: 4,
  /** The device is read-only. */
  RO: 5,
  /** blk_size in the configuration: the optimal block size. */
  BLK_SIZE: 6,
  /** FLUSH requests. */
  FLUSH: 9,
  /** I/O topology fields in the configuration. */
  TOPOLOGY: 10,
  /** The write-back cache can be switched through the configuration. */
  CONFIG_WCE: 11,
  /** More than one request queue (num_queues in the configuration). */
  MQ: 12,
  /** DISCARD requests and their limits in the configuration. */
  DISCARD: 13,
  /** WRITE_ZEROES requests and their limits in the configuration. */
  WRITE_ZEROES: 14,
} as const;

/** virtio-net feature bits (virtio 1.2 §5.1.3). */
export const NetFeature = {
  /** The device takes packets with a partial checksum. */
  CSUM: 0,
  /** The driver takes packets with a partial checksum. */
  GUEST_CSUM: 1,
  /** Control channel offload reconfiguration. */
  CTRL_GUEST_OFFLOADS: 2,
  /** mtu in the configuration. */
  MTU: 3,
  /** mac in the configuration. */
  MAC: 5,
  /** The driver takes TSOv4. */
  GUEST_TSO4: 7,
  /** The driver takes TSOv6. */
  GUEST_TSO6: 8,
  /** The driver takes TSO with ECN. */
  GUEST_ECN: 9,
  /** The driver takes UFO. */
  GUEST_UFO: 10,
  /** The device takes TSOv4. */
  HOST_TSO4: 11,
  /** The device takes TSOv6. */
  HOST_TSO6: 12,
  /** The device takes TSO with ECN. */
  HOST_ECN: 13,
  /** The device takes UFO. */
  HOST_UFO: 14,
  /** The driver can merge receive buffers (num_buffers in the header). */
  MRG_RXBUF: 15,
  /** status in the configuration. */
  STATUS: 16,
  /** A control virtqueue. */
  CTRL_VQ: 17,
  /** Control channel receive mode. */
  CTRL_RX: 18,
  /** Control channel VLAN filtering. */
  CTRL_VLAN: 19,
  /** Extra receive modes on the control channel. */
  CTRL_RX_EXTRA: 20,
  /** The driver can send gratuitous packets. */
  GUEST_ANNOUNCE: 21,
  /** More than one queue pair (max_virtqueue_pairs in the configuration). */
  MQ: 22,
  /** The MAC address can be set through the control channel. */
  CTRL_MAC_ADDR: 23,
} as const;

// ---- Device ids (virtio 1.2 §5) ----
/** Virtio device ids uvirtio has drivers or models for (virtio 1.2 §5). */
export const DeviceType = {
  /** Network card (§5.1). */
  NET: 1,
  /** Block device (§5.2). */
  BLK: 2,
  /** Console (§5.3). */
  CONSOLE: 3,
  /** Entropy source (§5.4). */
  RNG: 4,
} as const;
/** A virtio device id (virtio 1.2 §5), 1–255. */
export type DeviceTypeId = number;
const deviceTypeNames: Record<number, string> = { 1: 'net', 2: 'blk', 3: 'console', 4: 'rng', 16: 'gpu', 18: 'input', 19: 'vsock' };
/** A device id's short name ("blk", "net", …), or "type-N" for one uvirtio does not name. */
export function deviceTypeName(id: number): string {
  return deviceTypeNames[id] ?? `type-${id}`;
}

// ---- Feature masks ----
/** The mask of feature bit `n` (0–127), as the 128-bit features are kept: a bigint. */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}
/** Whether feature bit `n` is set in `mask`. */
export function hasFeature(mask: bigint, n: number): boolean {
  return (mask & bit(n)) !== 0n;
}

const transportNames = new Map<number, string>(Object.entries(Feature).map(([k, v]) => [v, k]));
const deviceFeatureNames: Record<number, Map<number, string>> = {
  [DeviceType.BLK]: new Map(Object.entries(BlkFeature).map(([k, v]) => [v, k])),
  [DeviceType.NET]: new Map(Object.entries(NetFeature).map(([k, v]) => [v, k])),
  [DeviceType.CONSOLE]: new Map(Object.entries(ConsoleFeature).map(([k, v]) => [v, k])),
};

/**
 * Names for people: `VERSION_1|RING_PACKED|bit50`. Device-type bits (0–23) are named when the
 * device type is given, else printed as `bitN`. An empty mask is "(none)".
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

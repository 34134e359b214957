// Every number uvirtio takes from the virtio spec, in one place.
//
// Sources: OASIS virtio 1.2 (and 1.4 draft where named), the Linux uapi headers, and — marked
// PROVISIONAL — the numbers uvirtio chose for "[PATCH V2 0/2] Virtqueue State Synchronization"
// (virtio-dev, July 2021), which never fixed them. A vendor with other numbers changes them here and
// nowhere else: every layer, the reference device included, reads them from this module.

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

// ---- virtio-pci (virtio 1.2 §4.1) ----
export const PCI_VENDOR_VIRTIO = 0x1af4;
/** Modern devices: 0x1040 + virtio device id (virtio 1.2 §4.1.2). */
export const PCI_DEVICE_MODERN_BASE = 0x1040;
/** Transitional devices: 0x1000–0x103f; their virtio id is the PCI subsystem device id. */
export const PCI_DEVICE_TRANSITIONAL_FIRST = 0x1000;
export const PCI_DEVICE_TRANSITIONAL_LAST = 0x103f;
export const PCI_CAP_ID_VENDOR = 0x09;
export const PCI_CAP_ID_MSIX = 0x11;

/** virtio_pci_cap.cfg_type (virtio 1.2 §4.1.4). */
export const PciCapType = {
  COMMON: 1, NOTIFY: 2, ISR: 3, DEVICE: 4, PCI_CFG: 5, SHARED_MEMORY: 8, VENDOR: 9,
} as const;
/** Byte offsets inside struct virtio_pci_cap (virtio 1.2 §4.1.4). */
export const PciCapField = {
  VNDR: 0, NEXT: 1, LEN: 2, CFG_TYPE: 3, BAR: 4, ID: 5, OFFSET: 8, LENGTH: 12,
  /** virtio_pci_notify_cap.notify_off_multiplier (§4.1.4.4). */
  NOTIFY_OFF_MULTIPLIER: 16,
} as const;
export const PCI_CAP_LEN = 16;
export const PCI_NOTIFY_CAP_LEN = 20;

/** struct virtio_pci_common_cfg (virtio 1.2 §4.1.4.3), plus the provisional state registers. */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0x00, // le32
  DEVICE_FEATURE: 0x04, // le32
  DRIVER_FEATURE_SELECT: 0x08, // le32
  DRIVER_FEATURE: 0x0c, // le32
  CONFIG_MSIX_VECTOR: 0x10, // le16
  NUM_QUEUES: 0x12, // le16
  DEVICE_STATUS: 0x14, // u8
  CONFIG_GENERATION: 0x15, // u8
  QUEUE_SELECT: 0x16, // le16
  QUEUE_SIZE: 0x18, // le16
  QUEUE_MSIX_VECTOR: 0x1a, // le16
  QUEUE_ENABLE: 0x1c, // le16
  QUEUE_NOTIFY_OFF: 0x1e, // le16
  QUEUE_DESC: 0x20, // le64
  QUEUE_DRIVER: 0x28, // le64
  QUEUE_DEVICE: 0x30, // le64
  QUEUE_NOTIF_CONFIG_DATA: 0x38, // le16 (1.2)
  QUEUE_RESET: 0x3a, // le16 (1.2)
  ADMIN_QUEUE_INDEX: 0x3c, // le16 (1.3)
  ADMIN_QUEUE_NUM: 0x3e, // le16 (1.3)
  /** PROVISIONAL (proposal): le16 available state of the selected queue. */
  QUEUE_AVAIL_STATE: 0x40,
  /** PROVISIONAL (proposal): le16 used state of the selected queue. */
  QUEUE_USED_STATE: 0x42,
  /** PROVISIONAL (DEVICE_STATE): le32 bytes of extra state; the device sets it on STOP, the driver before LOAD. */
  DEVICE_STATE_LEN: 0x44,
  /** PROVISIONAL (DEVICE_STATE): le64 IOVA of the driver's mailbox buffer. */
  DEVICE_STATE_ADDR: 0x48,
  /** PROVISIONAL (DEVICE_STATE): le16 command (DeviceStateCmd); reads 0 when done, else a DeviceStateRefusal (0xffff: no reason). */
  DEVICE_STATE_CMD: 0x50,
} as const;
/** Size of the common configuration with the provisional state registers (RING_STATE). */
export const COMMON_CFG_LEN = 0x44;
/** Size of the common configuration with the DEVICE_STATE mailbox as well. */
export const COMMON_CFG_EXT_LEN = 0x52;
/**
 * DEVICE_STATE commands. SAVE: allowed while STOP shows; the device writes DEVICE_STATE_LEN bytes
 * to DEVICE_STATE_ADDR. LOAD: allowed between FEATURES_OK and DRIVER_OK; the device reads
 * DEVICE_STATE_LEN bytes from DEVICE_STATE_ADDR and acts on them at DRIVER_OK. The bytes are
 * device-specific and opaque to the driver, which carries them in the snapshot.
 */
export const DeviceStateCmd = { SAVE: 1, LOAD: 2, REFUSED: 0xffff } as const;
/**
 * PROVISIONAL (DEVICE_STATE): what DEVICE_STATE_CMD reads after a refused command — the device's
 * reason. REFUSED (0xffff) is a refusal without a reason; 0xff01… name one.
 */
export const DeviceStateRefusal = {
  /** SAVE outside STOP, or LOAD outside FEATURES_OK … DRIVER_OK. */
  NOT_NOW: 0xff01,
  /** A command value the device does not know. */
  UNKNOWN_COMMAND: 0xff02,
  /** LOAD: the bytes are not a state this device recognises (format, version, length). */
  MALFORMED: 0xff03,
  /** LOAD: a well-formed state that does not fit this device (queue count or sizes, request types). */
  MISMATCH: 0xff04,
  /** The address and length name memory the device cannot reach. */
  BAD_ADDRESS: 0xff05,
} as const;
/** A person's words for each DeviceStateRefusal value (and REFUSED). */
export const DEVICE_STATE_REFUSAL_REASONS: Readonly<Record<number, string>> = {
  [DeviceStateCmd.REFUSED]: 'no reason given',
  [DeviceStateRefusal.NOT_NOW]: 'not allowed in the current device status',
  [DeviceStateRefusal.UNKNOWN_COMMAND]: 'unknown command',
  [DeviceStateRefusal.MALFORMED]: 'the state is malformed or of an unknown format',
  [DeviceStateRefusal.MISMATCH]: 'the state does not fit this device',
  [DeviceStateRefusal.BAD_ADDRESS]: 'the buffer is not memory the device can reach',
};
/** Size of the common configuration a virtio 1.2 device without them must at least expose. */
export const COMMON_CFG_MIN_LEN = 0x38;

export const VIRTIO_MSI_NO_VECTOR = 0xffff;
/** ISR status bits (virtio 1.2 §4.1.4.5). Reading the ISR clears it. */
export const Isr = { QUEUE: 1, CONFIG: 2 } as const;

// ---- Split virtqueue (virtio 1.2 §2.7) ----
export const SplitDesc = { SIZE: 16, ADDR: 0, LEN: 8, FLAGS: 12, NEXT: 14 } as const;
export const DescFlag = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
export const AvailFlag = { NO_INTERRUPT: 1 } as const;
export const UsedFlag = { NO_NOTIFY: 1 } as const;
export const SPLIT_MAX_SIZE = 32768;
export const SplitAlign = { DESC: 16, AVAIL: 2, USED: 4 } as const;

// ---- Packed virtqueue (virtio 1.2 §2.8) ----
export const PackedDesc = { SIZE: 16, ADDR: 0, LEN: 8, ID: 12, FLAGS: 14 } as const;
export const PackedFlag = { NEXT: 1, WRITE: 2, INDIRECT: 4, AVAIL: 1 << 7, USED: 1 << 15 } as const;
/** Event suppression flags (virtio 1.2 §2.8.10). */
export const PackedEventFlag = { ENABLE: 0, DISABLE: 1, DESC: 2 } as const;
export const PACKED_MAX_SIZE = 32768;
export const PackedAlign = { DESC: 16, EVENT: 4 } as const;

// ---- Provisional state encoding (SPEC-NOTES §1) ----
/** Packed ring state: bits 0–14 index, bit 15 wrap counter. */
export const PACKED_STATE_WRAP = 0x8000;
export const PACKED_STATE_INDEX_MASK = 0x7fff;

// ---- Block device (virtio 1.2 §5.2) ----
export const BlkReq = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, DISCARD: 11, WRITE_ZEROES: 13 } as const;
export const BlkStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;
export const BLK_SECTOR_SIZE = 512;
export const BLK_REQ_HEADER_LEN = 16;
export const BLK_ID_BYTES = 20;
/** Offsets in struct virtio_blk_config (virtio 1.2 §5.2.4). */
export const BlkConfig = {
  CAPACITY: 0, SIZE_MAX: 8, SEG_MAX: 12, GEOMETRY: 16, BLK_SIZE: 20, NUM_QUEUES: 34, LEN: 36,
} as const;

// ---- Network device (virtio 1.2 §5.1) ----
/** Modern virtio_net_hdr: 12 bytes (num_buffers is always present with VERSION_1). */
export const NET_HDR_LEN = 12;
export const NetConfig = { MAC: 0, STATUS: 6, MAX_VIRTQUEUE_PAIRS: 8, MTU: 10, LEN: 12 } as const;
export const NetStatus = { LINK_UP: 1, ANNOUNCE: 2 } as const;

// ---- Block device, continued: discard / write-zeroes (virtio 1.2 §5.2.4, §5.2.6) ----
/** struct virtio_blk_config past num_queues (virtio 1.2 §5.2.4). */
export const BlkConfigExt = {
  MAX_DISCARD_SECTORS: 36, // le32
  MAX_DISCARD_SEG: 40, // le32
  DISCARD_SECTOR_ALIGNMENT: 44, // le32
  MAX_WRITE_ZEROES_SECTORS: 48, // le32
  MAX_WRITE_ZEROES_SEG: 52, // le32
  WRITE_ZEROES_MAY_UNMAP: 56, // u8, then unused1[3]
  /** Length of the configuration up to and including unused1 (before the secure-erase fields). */
  LEN: 60,
} as const;

/** struct virtio_blk_discard_write_zeroes (virtio 1.2 §5.2.6): le64 sector, le32 num_sectors, le32 flags. */
export const BlkDiscardSegment = { SECTOR: 0, NUM_SECTORS: 8, FLAGS: 12, LEN: 16 } as const;
/** flags.unmap: only for WRITE_ZEROES; a DISCARD with it set is answered UNSUPP (§5.2.6.2). */
export const BLK_DISCARD_FLAG_UNMAP = 1;

// ---- Network device, continued: header fields and the control queue (virtio 1.2 §5.1.6) ----
/** struct virtio_net_hdr field offsets (virtio 1.2 §5.1.6). */
export const NetHdr = {
  FLAGS: 0, GSO_TYPE: 1, HDR_LEN: 2, GSO_SIZE: 4, CSUM_START: 6, CSUM_OFFSET: 8, NUM_BUFFERS: 10,
} as const;
/** virtio_net_hdr.flags (virtio 1.2 §5.1.6). */
export const NetHdrFlag = { NEEDS_CSUM: 1, DATA_VALID: 2, RSC_INFO: 4 } as const;
/** virtio_net_hdr.gso_type (virtio 1.2 §5.1.6). */
export const NetGso = { NONE: 0, TCPV4: 1, UDP: 3, TCPV6: 4, UDP_L4: 5, ECN: 0x80 } as const;

/** The control virtqueue (virtio 1.2 §5.1.6.5): class, command, data, then the ack byte. */
export const NetCtrl = {
  ACK_OK: 0,
  ACK_ERR: 1,
  /** VIRTIO_NET_CTRL_MQ (§5.1.6.5.5). */
  CLASS_MQ: 4,
  /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: le16 virtqueue_pairs. */
  MQ_VQ_PAIRS_SET: 0,
  MQ_VQ_PAIRS_MIN: 1,
  MQ_VQ_PAIRS_MAX: 0x8000,
} as const;

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

/** The state values the provisional registers carry for the packed layout. */
export function packPackedState(index: number, wrap: boolean): number {
  return (index & PACKED_STATE_INDEX_MASK) | (wrap ? PACKED_STATE_WRAP : 0);
}
export function unpackPackedState(v: number): { index: number; wrap: boolean } {
  return { index: v & PACKED_STATE_INDEX_MASK, wrap: (v & PACKED_STATE_WRAP) !== 0 };
}

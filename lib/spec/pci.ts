// virtio-pci numbers (virtio 1.2 §4.1): ids, capability types, common configuration offsets —
// including the provisional state registers and the DEVICE_STATE mailbox
// (docs/provisional-registers.md). Ground layer: imports nothing.

// ---- virtio-pci (virtio 1.2 §4.1) ----
/** PCI vendor id of every virtio device (virtio 1.2 §4.1.2). */
export const PCI_VENDOR_VIRTIO = 0x1af4;
/** Modern devices: 0x1040 + virtio device id (virtio 1.2 §4.1.2). */
export const PCI_DEVICE_MODERN_BASE = 0x1040;
/** Transitional devices: 0x1000–0x103f; their virtio id is the PCI subsystem device id. */
export const PCI_DEVICE_TRANSITIONAL_FIRST = 0x1000;
/** Last transitional PCI device id (virtio 1.2 §4.1.2). */
export const PCI_DEVICE_TRANSITIONAL_LAST = 0x103f;
/** PCI capability id of a vendor-specific capability; virtio's structures are announced with it (virtio 1.2 §4.1.4). */
export const PCI_CAP_ID_VENDOR = 0x09;
/** PCI capability id of MSI-X (PCI Local Bus 3.0 §6.8.2). */
export const PCI_CAP_ID_MSIX = 0x11;

/** virtio_pci_cap.cfg_type (virtio 1.2 §4.1.4). */
export const PciCapType = {
  /** Common configuration (§4.1.4.3). */
  COMMON: 1,
  /** Notifications (§4.1.4.4). */
  NOTIFY: 2,
  /** ISR status (§4.1.4.5). */
  ISR: 3,
  /** Device-specific configuration (§4.1.4.6). */
  DEVICE: 4,
  /** PCI configuration access (§4.1.4.8). */
  PCI_CFG: 5,
  /** Shared memory region (§4.1.4.7). */
  SHARED_MEMORY: 8,
  /** Vendor data (§4.1.4.9). */
  VENDOR: 9,
} as const;
/** Byte offsets inside struct virtio_pci_cap (virtio 1.2 §4.1.4). */
export const PciCapField = {
  /** u8 cap_vndr: {@link PCI_CAP_ID_VENDOR}. */
  VNDR: 0,
  /** u8 cap_next: offset of the next capability. */
  NEXT: 1,
  /** u8 cap_len: length of this capability, bytes. */
  LEN: 2,
  /** u8 cfg_type: a {@link PciCapType}. */
  CFG_TYPE: 3,
  /** u8 bar: the BAR (0–5) the structure is in. */
  BAR: 4,
  /** u8 id: tells several capabilities of one type apart. */
  ID: 5,
  /** le32 offset of the structure in the BAR. */
  OFFSET: 8,
  /** le32 length of the structure, bytes. */
  LENGTH: 12,
  /** virtio_pci_notify_cap.notify_off_multiplier (§4.1.4.4). */
  NOTIFY_OFF_MULTIPLIER: 16,
} as const;
/** Length of struct virtio_pci_cap, bytes (virtio 1.2 §4.1.4). */
export const PCI_CAP_LEN = 16;
/** Length of struct virtio_pci_notify_cap, bytes (virtio 1.2 §4.1.4.4). */
export const PCI_NOTIFY_CAP_LEN = 20;

/** struct virtio_pci_common_cfg (virtio 1.2 §4.1.4.3), plus the provisional state registers. */
export const CommonCfg = {
  /** le32: which 32 bits of device_feature to show. */
  DEVICE_FEATURE_SELECT: 0x00,
  /** le32: the selected 32 bits of the device's features. */
  DEVICE_FEATURE: 0x04,
  /** le32: which 32 bits of driver_feature to write. */
  DRIVER_FEATURE_SELECT: 0x08,
  /** le32: the selected 32 bits of the driver's features. */
  DRIVER_FEATURE: 0x0c,
  /** le16: MSI-X vector for configuration changes. */
  CONFIG_MSIX_VECTOR: 0x10,
  /** le16: how many queues the device has. */
  NUM_QUEUES: 0x12,
  /** u8: the device status field (Status bits). */
  DEVICE_STATUS: 0x14,
  /** u8: changes whenever the device configuration may have changed. */
  CONFIG_GENERATION: 0x15,
  /** le16: the queue the queue_* fields below act on. */
  QUEUE_SELECT: 0x16,
  /** le16: size of the selected queue; reads its maximum after reset. */
  QUEUE_SIZE: 0x18,
  /** le16: MSI-X vector of the selected queue. */
  QUEUE_MSIX_VECTOR: 0x1a,
  /** le16: 1 enables the selected queue. */
  QUEUE_ENABLE: 0x1c,
  /** le16: the selected queue's offset into the notification area, in notify_off_multiplier units. */
  QUEUE_NOTIFY_OFF: 0x1e,
  /** le64: address of the selected queue's descriptor area. */
  QUEUE_DESC: 0x20,
  /** le64: address of the selected queue's driver area. */
  QUEUE_DRIVER: 0x28,
  /** le64: address of the selected queue's device area. */
  QUEUE_DEVICE: 0x30,
  /** le16 (1.2): data for notifications with NOTIF_CONFIG_DATA. */
  QUEUE_NOTIF_CONFIG_DATA: 0x38,
  /** le16 (1.2): 1 resets the selected queue (RING_RESET). */
  QUEUE_RESET: 0x3a,
  /** le16 (1.3): index of the first administration queue. */
  ADMIN_QUEUE_INDEX: 0x3c,
  /** le16 (1.3): how many administration queues. */
  ADMIN_QUEUE_NUM: 0x3e,
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
 * DEVICE_STATE commands (PROVISIONAL, docs/provisional-registers.md#device-state). SAVE: allowed while STOP shows; the device writes DEVICE_STATE_LEN bytes
 * to DEVICE_STATE_ADDR. LOAD: allowed between FEATURES_OK and DRIVER_OK; the device reads
 * DEVICE_STATE_LEN bytes from DEVICE_STATE_ADDR and acts on them at DRIVER_OK. The bytes are
 * device-specific and opaque to the driver, which carries them in the snapshot.
 */
export const DeviceStateCmd = {
  /** Write the device's extra state to the mailbox (while STOP shows). */
  SAVE: 1,
  /** Read extra state from the mailbox (between FEATURES_OK and DRIVER_OK). */
  LOAD: 2,
  /** Read back: the command was refused without a reason. */
  REFUSED: 0xffff,
} as const;
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

/** "No MSI-X vector" for config_msix_vector / queue_msix_vector; also read back when the device refuses a vector (virtio 1.2 §4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;
/** ISR status bits (virtio 1.2 §4.1.4.5). Reading the ISR clears it. */
export const Isr = {
  /** A used-buffer notification. */
  QUEUE: 1,
  /** A configuration change notification. */
  CONFIG: 2,
} as const;

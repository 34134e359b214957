// virtio-net (virtio 1.2 §5.1): header, configuration layout, control queue. Ground layer.

// ---- Network device (virtio 1.2 §5.1) ----
/** Modern virtio_net_hdr: 12 bytes (num_buffers is always present with VERSION_1). */
export const NET_HDR_LEN = 12;
/** Offsets in struct virtio_net_config (virtio 1.2 §5.1.4). */
export const NetConfig = {
  /** u8[6]: the MAC address (VIRTIO_NET_F_MAC). */
  MAC: 0,
  /** le16: {@link NetStatus} bits (VIRTIO_NET_F_STATUS). */
  STATUS: 6,
  /** le16: most queue pairs (VIRTIO_NET_F_MQ). */
  MAX_VIRTQUEUE_PAIRS: 8,
  /** le16: MTU, bytes (VIRTIO_NET_F_MTU). */
  MTU: 10,
  /** Length of the configuration fields uvirtio reads, bytes. */
  LEN: 12,
} as const;
/** Bits of virtio_net_config.status (virtio 1.2 §5.1.4). */
export const NetStatus = {
  /** The link is up. */
  LINK_UP: 1,
  /** The device asks the driver to announce itself (VIRTIO_NET_F_GUEST_ANNOUNCE). */
  ANNOUNCE: 2,
} as const;

// ---- Network device, continued: header fields and the control queue (virtio 1.2 §5.1.6) ----
/** struct virtio_net_hdr field offsets (virtio 1.2 §5.1.6). */
export const NetHdr = {
  /** u8: {@link NetHdrFlag} bits. */
  FLAGS: 0,
  /** u8: {@link NetGso} type. */
  GSO_TYPE: 1,
  /** le16: length of the headers to copy for each segment, bytes. */
  HDR_LEN: 2,
  /** le16: payload size of each segment, bytes. */
  GSO_SIZE: 4,
  /** le16: where checksumming starts, bytes into the packet. */
  CSUM_START: 6,
  /** le16: where the checksum goes, bytes after csum_start. */
  CSUM_OFFSET: 8,
  /** le16: receive buffers this packet spans (VIRTIO_NET_F_MRG_RXBUF; 1 otherwise). */
  NUM_BUFFERS: 10,
} as const;
/** virtio_net_hdr.flags (virtio 1.2 §5.1.6). */
export const NetHdrFlag = {
  /** The packet needs a checksum at csum_start + csum_offset. */
  NEEDS_CSUM: 1,
  /** Received: the checksum is already validated. */
  DATA_VALID: 2,
  /** Received: the packet carries coalescing information. */
  RSC_INFO: 4,
} as const;
/** virtio_net_hdr.gso_type (virtio 1.2 §5.1.6). */
export const NetGso = {
  /** Not a GSO packet. */
  NONE: 0,
  /** TCP over IPv4 segmentation. */
  TCPV4: 1,
  /** UDP fragmentation offload. */
  UDP: 3,
  /** TCP over IPv6 segmentation. */
  TCPV6: 4,
  /** UDP segmentation (USO). */
  UDP_L4: 5,
  /** Flag: TCP with ECN. */
  ECN: 0x80,
} as const;

/** The control virtqueue (virtio 1.2 §5.1.6.5): class, command, data, then the ack byte. */
export const NetCtrl = {
  /** Ack byte: the command was carried out. */
  ACK_OK: 0,
  /** Ack byte: the command failed. */
  ACK_ERR: 1,
  /** VIRTIO_NET_CTRL_MQ (§5.1.6.5.5). */
  CLASS_MQ: 4,
  /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: le16 virtqueue_pairs. */
  MQ_VQ_PAIRS_SET: 0,
  /** Fewest queue pairs VQ_PAIRS_SET accepts. */
  MQ_VQ_PAIRS_MIN: 1,
  /** Most queue pairs VQ_PAIRS_SET accepts. */
  MQ_VQ_PAIRS_MAX: 0x8000,
} as const;

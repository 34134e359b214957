// virtio-net (virtio 1.2 §5.1): header, configuration layout, control queue. Ground layer.

// ---- Network device (virtio 1.2 §5.1) ----
/** Modern virtio_net_hdr: 12 bytes (num_buffers is always present with VERSION_1). */
export const NET_HDR_LEN = 12;
export const NetConfig = { MAC: 0, STATUS: 6, MAX_VIRTQUEUE_PAIRS: 8, MTU: 10, LEN: 12 } as const;
export const NetStatus = { LINK_UP: 1, ANNOUNCE: 2 } as const;

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

// struct virtio_net_hdr (virtio 1.2 §5.1.6), the 12 bytes in front of every frame: checksum and
// segmentation offload metadata on transmit, what the device did on receive, and — with
// MRG_RXBUF — how many receive buffers the frame spans.

import { NET_HDR_LEN, NetHdr } from '../../lib/spec/index.js';

/**
 * struct virtio_net_hdr (virtio 1.2 §5.1.6), decoded: the 12 bytes in front of every frame. All
 * offsets and lengths are in bytes; 0 where the feature they belong to is not in use.
 */
export interface NetHeader {
  /** NEEDS_CSUM 1, DATA_VALID 2, RSC_INFO 4 (NetHdrFlag). */
  flags: number;
  /** NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5, | ECN 0x80 (NetGso). */
  gsoType: number;
  /** hdr_len: bytes of protocol headers before the payload (a hint for GSO; §5.1.6.2). */
  hdrLen: number;
  /** gso_size: payload bytes per segment the frame is to be cut into (GSO), else 0. */
  gsoSize: number;
  /** csum_start: offset in the frame where checksumming starts (with NEEDS_CSUM). */
  csumStart: number;
  /** csum_offset: where, counted from csumStart, the computed checksum is stored (with NEEDS_CSUM). */
  csumOffset: number;
  /** Receive buffers the frame spans (MRG_RXBUF); 0 on transmit (§5.1.6.2). */
  numBuffers: number;
}

/** Writes `h` (missing fields 0) into the first 12 bytes of `into`; num_buffers is always 0 on transmit. */
export function encodeNetHeader(h: Partial<NetHeader>, into: Uint8Array): void {
  const v = new DataView(into.buffer, into.byteOffset, NET_HDR_LEN);
  v.setUint8(NetHdr.FLAGS, h.flags ?? 0);
  v.setUint8(NetHdr.GSO_TYPE, h.gsoType ?? 0);
  v.setUint16(NetHdr.HDR_LEN, h.hdrLen ?? 0, true);
  v.setUint16(NetHdr.GSO_SIZE, h.gsoSize ?? 0, true);
  v.setUint16(NetHdr.CSUM_START, h.csumStart ?? 0, true);
  v.setUint16(NetHdr.CSUM_OFFSET, h.csumOffset ?? 0, true);
  v.setUint16(NetHdr.NUM_BUFFERS, 0, true);
}

/**
 * Reads a virtio_net_hdr (virtio 1.2 §5.1.6: little-endian, 12 bytes with num_buffers) from the
 * start of `bytes`. Throws a RangeError when `bytes` is shorter than 12 bytes; values are not
 * checked (the receive path validates what it depends on).
 */
export function decodeNetHeader(bytes: Uint8Array): NetHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, NET_HDR_LEN);
  return {
    flags: v.getUint8(NetHdr.FLAGS),
    gsoType: v.getUint8(NetHdr.GSO_TYPE),
    hdrLen: v.getUint16(NetHdr.HDR_LEN, true),
    gsoSize: v.getUint16(NetHdr.GSO_SIZE, true),
    csumStart: v.getUint16(NetHdr.CSUM_START, true),
    csumOffset: v.getUint16(NetHdr.CSUM_OFFSET, true),
    numBuffers: v.getUint16(NetHdr.NUM_BUFFERS, true),
  };
}

// struct virtio_net_hdr (virtio 1.2 §5.1.6), the 12 bytes in front of every frame: checksum and
// segmentation offload metadata on transmit, what the device did on receive, and — with
// MRG_RXBUF — how many receive buffers the frame spans.

import { NET_HDR_LEN, NetHdr } from '../../lib/spec/index.js';

export interface NetHeader {
  /** NEEDS_CSUM 1, DATA_VALID 2, RSC_INFO 4 (NetHdrFlag). */
  flags: number;
  /** NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5, | ECN 0x80 (NetGso). */
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
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

// struct virtio_net_hdr (virtio 1.2 §5.1.6), the 12 bytes in front of every frame: checksum and
// segmentation offload metadata on transmit, what the device did on receive, and — with
// MRG_RXBUF — how many receive buffers the frame spans.

import { NET_HDR_LEN, NetHdr } from '../../lib/spec/index.js';
import { UsageError } from '../../lib/errors.js';
import { shown } from '../../lib/util/shown.js';
import { checkValue, int, optionsObject, type OptionKeys } from '../../lib/util/options.js';
import { plainBytes } from '../../lib/util/plain-bytes.js';

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

/** The fields of a NetHeader, for the check that refuses a misspelt one (a `gsoTyp` would send no GSO). */
const NET_HEADER_KEYS: OptionKeys<NetHeader> = {
  flags: true, gsoType: true, hdrLen: true, gsoSize: true, csumStart: true, csumOffset: true, numBuffers: true,
};
/** u8 flags and gso_type; le16 hdr_len, gso_size, csum_start, csum_offset, num_buffers (virtio 1.2 §5.1.6). */
const U8 = int(0, 0xff);
const U16 = int(0, 0xffff);

/**
 * `h` checked and read once into a plain NetHeader (missing fields 0): every field the header has
 * (own or inherited, enumerable or not) is one of NetHeader's, and each value fits its C type in
 * struct virtio_net_hdr (virtio 1.2 §5.1.6): flags and gsoType integers from 0 to 255, the le16
 * fields integers from 0 to 65535. Throws UsageError E_INVALID_ARGUMENT (prefixed with `what`)
 * naming the field and its range, or the unknown key with the closest spelling as the hint — never
 * a value truncated into another (gsoSize 0x10000 would go out as 0).
 */
export function checkNetHeader(h: Partial<NetHeader>, what: string): NetHeader {
  if (typeof h !== 'object' || h === null) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what}: the header must be an object of NetHeader fields, got ${shown(h)}`, 'pass {} (no offloads) or leave it out');
  }
  const given = optionsObject(h, `${what} header`, NET_HEADER_KEYS); // each field read once, into a plain copy
  const field = (spec: typeof U8, k: keyof NetHeader, c: string): number =>
    checkValue(spec, given[k] ?? 0, `${what} header ${k} (${c})`, 'see struct virtio_net_hdr, virtio 1.2 §5.1.6');
  return {
    flags: field(U8, 'flags', 'u8 flags'),
    gsoType: field(U8, 'gsoType', 'u8 gso_type'),
    hdrLen: field(U16, 'hdrLen', 'le16 hdr_len'),
    gsoSize: field(U16, 'gsoSize', 'le16 gso_size'),
    csumStart: field(U16, 'csumStart', 'le16 csum_start'),
    csumOffset: field(U16, 'csumOffset', 'le16 csum_offset'),
    numBuffers: field(U16, 'numBuffers', 'le16 num_buffers'),
  };
}

/**
 * Writes `h` (missing fields 0) into the first 12 bytes of `into`; num_buffers is always 0 on
 * transmit (virtio 1.2 §5.1.6.2). Throws UsageError E_INVALID_ARGUMENT unless `h` is an object of
 * NetHeader fields only, each within its C type's range (checkNetHeader), and `into` a Uint8Array
 * of at least 12 bytes.
 */
export function encodeNetHeader(h: Partial<NetHeader>, into: Uint8Array): void {
  const header = checkNetHeader(h, 'encodeNetHeader');
  const view = plainBytes(into); // written through the array's own memory, whatever its own properties say
  if (!view || view.length < NET_HDR_LEN) {
    throw new UsageError('E_INVALID_ARGUMENT', `encodeNetHeader: a virtio_net_hdr needs a Uint8Array of ${NET_HDR_LEN} bytes, got ${view ? `${view.length} bytes` : shown(into)}`);
  }
  writeNetHeader(header, view);
}

/** encodeNetHeader without the argument checks: for the driver's own transmit buffers, `h` a checkNetHeader copy. */
export function writeNetHeader(h: NetHeader, into: Uint8Array): void {
  // Byte by byte (little-endian): no DataView per frame on the transmit path.
  into[NetHdr.FLAGS] = h.flags;
  into[NetHdr.GSO_TYPE] = h.gsoType;
  putLe16(into, NetHdr.HDR_LEN, h.hdrLen);
  putLe16(into, NetHdr.GSO_SIZE, h.gsoSize);
  putLe16(into, NetHdr.CSUM_START, h.csumStart);
  putLe16(into, NetHdr.CSUM_OFFSET, h.csumOffset);
  putLe16(into, NetHdr.NUM_BUFFERS, 0);
}

/**
 * Reads a virtio_net_hdr (virtio 1.2 §5.1.6: little-endian, 12 bytes with num_buffers) from the
 * start of `bytes`. Throws UsageError E_INVALID_ARGUMENT unless `bytes` is a Uint8Array of at
 * least 12 bytes; values are not checked (the receive path validates what it depends on).
 */
export function decodeNetHeader(bytes: Uint8Array): NetHeader {
  const view = plainBytes(bytes);
  if (!view || view.length < NET_HDR_LEN) {
    throw new UsageError('E_INVALID_ARGUMENT', `decodeNetHeader: a virtio_net_hdr is a Uint8Array of ${NET_HDR_LEN} bytes, got ${view ? `${view.length} bytes` : shown(bytes)}`);
  }
  return readNetHeader(view);
}

/** decodeNetHeader without the argument check: for the receive path's own copies, at least 12 bytes long. */
export function readNetHeader(bytes: Uint8Array): NetHeader {
  return {
    flags: bytes[NetHdr.FLAGS]!,
    gsoType: bytes[NetHdr.GSO_TYPE]!,
    hdrLen: le16(bytes, NetHdr.HDR_LEN),
    gsoSize: le16(bytes, NetHdr.GSO_SIZE),
    csumStart: le16(bytes, NetHdr.CSUM_START),
    csumOffset: le16(bytes, NetHdr.CSUM_OFFSET),
    numBuffers: le16(bytes, NetHdr.NUM_BUFFERS),
  };
}

function le16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function putLe16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

// The vhost-user wire format (QEMU docs/interop/vhost-user.rst, "Message Specification"): a
// 12-byte header { u32 request, u32 flags, u32 size } and a payload, all in the machine's byte
// order (little-endian here: lib/mem/dma.ts refuses other hosts).

/** Front-end message types ("Front-end message types"). Only those this front-end sends. */
export const Req = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  SET_MEM_TABLE: 5,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  GET_CONFIG: 24,
} as const;

export const REQ_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(Req).map(([k, v]) => [v, k]));

/** "Header": bits 0–1 version (1), bit 2 reply, bit 3 need_reply. */
export const Flag = { VERSION: 0x1, REPLY: 0x4, NEED_REPLY: 0x8 } as const;
export const HEADER_SIZE = 12;
/** The largest payload we accept (a VhostUserMsg's union is well below this). */
export const MAX_PAYLOAD = 4096;

/** "Communication": VHOST_USER_F_PROTOCOL_FEATURES, the reused virtio feature bit 30. */
export const F_PROTOCOL_FEATURES = 30;
/** "Migration": VHOST_F_LOG_ALL, bit 26 — the front-end sets it to have writes logged (dirty pages). */
export const F_LOG_ALL = 26;
/**
 * The bits of GET_FEATURES / SET_FEATURES that are vhost-user's own, not the device's:
 * VHOST_USER_F_PROTOCOL_FEATURES (30) and VHOST_F_LOG_ALL (26). virtio 1.2 §6 reserves both
 * positions (bit 26 is unassigned; bit 30 is legacy-only), so a device feature set never holds them.
 */
export const VHOST_USER_OWN_FEATURES = (1n << BigInt(F_PROTOCOL_FEATURES)) | (1n << BigInt(F_LOG_ALL));

/**
 * The device's features in a back-end's GET_FEATURES reply: `offered` (bit n is 1n << n) without
 * {@link VHOST_USER_OWN_FEATURES}. virtio 1.2 §2.2: the driver sees the device's bits only.
 */
export function deviceFeatureBits(offered: bigint): bigint {
  return offered & ~VHOST_USER_OWN_FEATURES;
}

/** "Protocol features": the bits this front-end knows about. */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  REPLY_ACK: 3,
  SLAVE_REQ: 5,
  CONFIG: 9,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
} as const;
/** Those we negotiate when offered (each is implemented here): MQ, REPLY_ACK, CONFIG. */
export const WANTED_PROTOCOL_FEATURES = (1n << BigInt(ProtocolFeature.MQ)) | (1n << BigInt(ProtocolFeature.REPLY_ACK)) | (1n << BigInt(ProtocolFeature.CONFIG));

/** SET_VRING_KICK/CALL payload: bits 0–7 the ring, bit 8 "no fd" (polling). */
export const VRING_NOFD = 0x100;
/** "Memory regions description": at most 8 regions in SET_MEM_TABLE. */
export const MAX_MEM_REGIONS = 8;
export const MEM_REGION_SIZE = 32;

export function protocolFeatureNames(bits: bigint): string {
  const names = Object.entries(ProtocolFeature).filter(([, n]) => (bits >> BigInt(n)) & 1n).map(([k]) => k);
  const known = Object.values(ProtocolFeature).reduce((m, n) => m | (1n << BigInt(n)), 0n);
  const rest = bits & ~known;
  return [...names, ...(rest ? [`0x${rest.toString(16)}`] : [])].join('|') || 'none';
}

/** Payload builders ("Payload"); each returns the exact bytes of that payload. */
export const Payload = {
  u64(v: bigint): Uint8Array {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  },
  /** "A vring state description": u32 index, u32 num. */
  state(index: number, num: number): Uint8Array {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, index, true);
    v.setUint32(4, num >>> 0, true);
    return b;
  },
  /** "A vring address description": index, flags, then desc/used/avail/log as u64 (front-end user addresses). */
  addr(index: number, desc: bigint, used: bigint, avail: bigint): Uint8Array {
    const b = new Uint8Array(40);
    const v = new DataView(b.buffer);
    v.setUint32(0, index, true);
    v.setUint32(4, 0, true); // flags: no VHOST_VRING_F_LOG
    v.setBigUint64(8, desc, true);
    v.setBigUint64(16, used, true);
    v.setBigUint64(24, avail, true);
    v.setBigUint64(32, 0n, true);
    return b;
  },
  /** "Memory regions description": u32 count, u32 padding, then { guest, size, user, mmap offset }. */
  memTable(regions: readonly { guest: bigint; size: bigint; user: bigint; offset: bigint }[]): Uint8Array {
    const b = new Uint8Array(8 + MEM_REGION_SIZE * regions.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, regions.length, true);
    regions.forEach((r, i) => {
      const o = 8 + MEM_REGION_SIZE * i;
      v.setBigUint64(o, r.guest, true);
      v.setBigUint64(o + 8, r.size, true);
      v.setBigUint64(o + 16, r.user, true);
      v.setBigUint64(o + 24, r.offset, true);
    });
    return b;
  },
  /** "Virtio device config space": u32 offset, u32 size, u32 flags, then size bytes. */
  config(offset: number, size: number): Uint8Array {
    const b = new Uint8Array(12 + size);
    const v = new DataView(b.buffer);
    v.setUint32(0, offset, true);
    v.setUint32(4, size, true);
    v.setUint32(8, 0, true);
    return b;
  },
};

/** A message as received. */
export interface Message {
  request: number;
  flags: number;
  payload: Uint8Array;
}

export function u64Of(m: Message): bigint {
  return new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.length).getBigUint64(0, true);
}
export function stateOf(m: Message): { index: number; num: number } {
  const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.length);
  return { index: v.getUint32(0, true), num: v.getUint32(4, true) };
}

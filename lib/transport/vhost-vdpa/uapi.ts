// The vhost-vdpa user-space ABI: ioctl numbers, backend feature bits, IOTLB message types and the
// struct layouts this transport uses, from the kernel's include/uapi/linux/vhost.h and
// include/uapi/linux/vhost_types.h (Linux 6.12, the `vdpa` VM profile's kernel). Every request is
// built with lib/sys/ioctl.ts from its header definition (type VHOST_VIRTIO = 0xAF, number,
// argument size), so test/unit/vhost-vdpa-uapi.test.ts can compare it with the encoded value.
// Pure data and encoders: nothing here makes a system call.

import { IO, IOR, IOW, IOWR } from '../../sys/ioctl.js';
import { defineLayout } from '../../sys/layout.js';

/** VHOST_VIRTIO (vhost.h): the ioctl type byte of every vhost request. */
export const VHOST_VIRTIO = 0xaf;

/** struct vhost_vring_state { unsigned int index; unsigned int num; } (vhost_types.h). */
export const VringState = defineLayout('struct vhost_vring_state', 8, { index: [0, 'u32'], num: [4, 'u32'] });
/** struct vhost_vring_file { unsigned int index; int fd; } (vhost_types.h); fd -1 unbinds. */
export const VringFile = defineLayout('struct vhost_vring_file', 8, { index: [0, 'u32'], fd: [4, 's32'] });
/**
 * struct vhost_vring_addr (vhost_types.h): index, flags (VHOST_VRING_F_LOG), then the descriptor
 * table, used (device) area, available (driver) area and log addresses. Under vhost-vdpa the
 * "user addresses" are IOVAs of the device's IOTLB (drivers/vhost/vdpa.c passes them to
 * set_vq_address unchanged).
 */
export const VringAddr = defineLayout('struct vhost_vring_addr', 40, {
  index: [0, 'u32'], flags: [4, 'u32'], desc_user_addr: [8, 'u64'], used_user_addr: [16, 'u64'], avail_user_addr: [24, 'u64'], log_guest_addr: [32, 'u64'],
});
/** struct vhost_vdpa_config { __u32 off; __u32 len; __u8 buf[]; } (vhost_types.h): the header; `len` bytes of buf follow. */
export const VdpaConfig = defineLayout('struct vhost_vdpa_config', 8, { off: [0, 'u32'], len: [4, 'u32'] });
/** struct vhost_vdpa_iova_range { __u64 first; __u64 last; } (vhost_types.h): the IOVAs the device can map, inclusive. */
export const VdpaIovaRange = defineLayout('struct vhost_vdpa_iova_range', 16, { first: [0, 'u64'], last: [8, 'u64'] });
/** struct vhost_iotlb_msg (vhost_types.h, "no alignment requirement"): iova, size, uaddr, perm, type; 32 bytes with its tail padding. */
export const IotlbMsg = defineLayout('struct vhost_iotlb_msg', 32, {
  iova: [0, 'u64'], size: [8, 'u64'], uaddr: [16, 'u64'], perm: [24, 'u8'], type: [25, 'u8'],
});
/**
 * struct vhost_msg_v2 { __u32 type; __u32 asid; union { struct vhost_iotlb_msg iotlb; __u8 padding[64]; }; }
 * (vhost_types.h): 72 bytes, the iotlb message at offset 8. Written to the device fd
 * (drivers/vhost/vhost.c vhost_chr_write_iter) once VHOST_BACKEND_F_IOTLB_MSG_V2 is set.
 */
export const MsgV2 = defineLayout('struct vhost_msg_v2', 72, {
  type: [0, 'u32'], asid: [4, 'u32'],
  iova: [8, 'u64'], size: [16, 'u64'], uaddr: [24, 'u64'], perm: [32, 'u8'], iotlbType: [33, 'u8'],
});

/** Every layout above (for the layout tests). */
export const allVdpaLayouts = [VringState, VringFile, VringAddr, VdpaConfig, VdpaIovaRange, IotlbMsg, MsgV2] as const;

/** The vhost and vhost-vdpa requests this transport sends (vhost.h), encoded with _IO/_IOR/_IOW/_IOWR. */
export const VdpaIoctl = {
  /** VHOST_GET_FEATURES _IOR(0xAF, 0x00, __u64): the device's virtio feature bits. */
  GET_FEATURES: IOR(VHOST_VIRTIO, 0x00, 8),
  /** VHOST_SET_FEATURES _IOW(0xAF, 0x00, __u64): the driver's (before FEATURES_OK). */
  SET_FEATURES: IOW(VHOST_VIRTIO, 0x00, 8),
  /** VHOST_SET_OWNER _IO(0xAF, 0x01): this process owns the device (before anything else). */
  SET_OWNER: IO(VHOST_VIRTIO, 0x01),
  /** VHOST_SET_VRING_NUM _IOW(0xAF, 0x10, struct vhost_vring_state): ring size (a power of two). */
  SET_VRING_NUM: IOW(VHOST_VIRTIO, 0x10, VringState.size),
  /** VHOST_SET_VRING_ADDR _IOW(0xAF, 0x11, struct vhost_vring_addr). */
  SET_VRING_ADDR: IOW(VHOST_VIRTIO, 0x11, VringAddr.size),
  /** VHOST_SET_VRING_BASE _IOW(0xAF, 0x12, struct vhost_vring_state): the ring's state for its next start. */
  SET_VRING_BASE: IOW(VHOST_VIRTIO, 0x12, VringState.size),
  /** VHOST_GET_VRING_BASE _IOWR(0xAF, 0x12, struct vhost_vring_state): the ring's state (the parent's get_vq_state). */
  GET_VRING_BASE: IOWR(VHOST_VIRTIO, 0x12, VringState.size),
  /** VHOST_SET_VRING_KICK _IOW(0xAF, 0x20, struct vhost_vring_file): the eventfd the driver writes to notify. */
  SET_VRING_KICK: IOW(VHOST_VIRTIO, 0x20, VringFile.size),
  /** VHOST_SET_VRING_CALL _IOW(0xAF, 0x21, struct vhost_vring_file): the eventfd the device signals on used buffers. */
  SET_VRING_CALL: IOW(VHOST_VIRTIO, 0x21, VringFile.size),
  /** VHOST_SET_BACKEND_FEATURES _IOW(0xAF, 0x25, __u64). */
  SET_BACKEND_FEATURES: IOW(VHOST_VIRTIO, 0x25, 8),
  /** VHOST_GET_BACKEND_FEATURES _IOR(0xAF, 0x26, __u64). */
  GET_BACKEND_FEATURES: IOR(VHOST_VIRTIO, 0x26, 8),
  /** VHOST_VDPA_GET_DEVICE_ID _IOR(0xAF, 0x70, __u32): the virtio device id (virtio 1.2 §5). */
  GET_DEVICE_ID: IOR(VHOST_VIRTIO, 0x70, 4),
  /** VHOST_VDPA_GET_STATUS _IOR(0xAF, 0x71, __u8): device_status (virtio 1.2 §2.1). */
  GET_STATUS: IOR(VHOST_VIRTIO, 0x71, 1),
  /** VHOST_VDPA_SET_STATUS _IOW(0xAF, 0x72, __u8): 0 resets; otherwise bits may only be added. */
  SET_STATUS: IOW(VHOST_VIRTIO, 0x72, 1),
  /** VHOST_VDPA_GET_CONFIG _IOR(0xAF, 0x73, struct vhost_vdpa_config): device configuration bytes. */
  GET_CONFIG: IOR(VHOST_VIRTIO, 0x73, VdpaConfig.size),
  /** VHOST_VDPA_SET_CONFIG _IOW(0xAF, 0x74, struct vhost_vdpa_config). */
  SET_CONFIG: IOW(VHOST_VIRTIO, 0x74, VdpaConfig.size),
  /** VHOST_VDPA_SET_VRING_ENABLE _IOW(0xAF, 0x75, struct vhost_vring_state): num 1 enables, 0 disables. */
  SET_VRING_ENABLE: IOW(VHOST_VIRTIO, 0x75, VringState.size),
  /** VHOST_VDPA_GET_VRING_NUM _IOR(0xAF, 0x76, __u16): the largest ring size. */
  GET_VRING_NUM: IOR(VHOST_VIRTIO, 0x76, 2),
  /** VHOST_VDPA_SET_CONFIG_CALL _IOW(0xAF, 0x77, int): the eventfd signalled on a configuration change. */
  SET_CONFIG_CALL: IOW(VHOST_VIRTIO, 0x77, 4),
  /** VHOST_VDPA_GET_IOVA_RANGE _IOR(0xAF, 0x78, struct vhost_vdpa_iova_range). */
  GET_IOVA_RANGE: IOR(VHOST_VIRTIO, 0x78, VdpaIovaRange.size),
  /** VHOST_VDPA_GET_CONFIG_SIZE _IOR(0xAF, 0x79, __u32): bytes of device configuration. */
  GET_CONFIG_SIZE: IOR(VHOST_VIRTIO, 0x79, 4),
  /** VHOST_VDPA_SUSPEND _IO(0xAF, 0x7D): the device processes no more descriptors and keeps its ring state. */
  SUSPEND: IO(VHOST_VIRTIO, 0x7d),
  /** VHOST_VDPA_RESUME _IO(0xAF, 0x7E): the suspended device goes on where it stopped. */
  RESUME: IO(VHOST_VIRTIO, 0x7e),
  /** VHOST_VDPA_GET_VQS_COUNT _IOR(0xAF, 0x80, __u32): how many virtqueues the device has. */
  GET_VQS_COUNT: IOR(VHOST_VIRTIO, 0x80, 4),
} as const;

/** Backend feature bit numbers (vhost_types.h VHOST_BACKEND_F_*); the mask of bit n is 1n << n. */
export const BackendFeature = {
  /** Messages on the fd are struct vhost_msg_v2 (required here). */
  IOTLB_MSG_V2: 0x1,
  /** BATCH_BEGIN / BATCH_END around a set of updates. */
  IOTLB_BATCH: 0x2,
  /** The v2 message's asid field is used. */
  IOTLB_ASID: 0x3,
  /** VHOST_VDPA_SUSPEND works. */
  SUSPEND: 0x4,
  /** VHOST_VDPA_RESUME works. */
  RESUME: 0x5,
  /** Rings may be enabled after DRIVER_OK. */
  ENABLE_AFTER_DRIVER_OK: 0x6,
  /** Descriptor areas may be in their own address-space group. */
  DESC_ASID: 0x7,
  /** The IOTLB mappings survive a device reset (status 0). */
  IOTLB_PERSIST: 0x8,
} as const;

/** The backend features this transport asks for when the device offers them (it never needs ASID groups). */
export const WANTED_BACKEND_FEATURES = [
  BackendFeature.IOTLB_MSG_V2, BackendFeature.IOTLB_BATCH, BackendFeature.SUSPEND, BackendFeature.RESUME, BackendFeature.IOTLB_PERSIST,
] as const;

/** struct vhost_iotlb_msg.type values (vhost_types.h VHOST_IOTLB_*). */
export const IotlbType = { MISS: 1, UPDATE: 2, INVALIDATE: 3, ACCESS_FAIL: 4, BATCH_BEGIN: 5, BATCH_END: 6 } as const;
/** struct vhost_iotlb_msg.perm values (vhost_types.h VHOST_ACCESS_*). */
export const IotlbAccess = { RO: 0x1, WO: 0x2, RW: 0x3 } as const;
/** struct vhost_msg_v2.type for IOTLB messages (vhost_types.h VHOST_IOTLB_MSG_V2). */
export const VHOST_IOTLB_MSG_V2 = 0x2;

/** One IOTLB message to write to the device fd: an update (map), an invalidation (unmap), or a batch bracket. */
export interface IotlbRequest {
  /** UPDATE, INVALIDATE, BATCH_BEGIN or BATCH_END (IotlbType). */
  type: number;
  /** First IOVA of the range (ignored for BATCH_*). */
  iova?: bigint;
  /** Bytes in the range (non-zero for UPDATE). */
  size?: bigint;
  /** This process's virtual address of the range's first byte (UPDATE). */
  uaddr?: bigint;
  /** IotlbAccess (UPDATE). */
  perm?: number;
}

/** The 72 bytes of struct vhost_msg_v2 for `m` (asid 0: this transport uses one address space). */
export function encodeMsgV2(m: IotlbRequest): Uint8Array {
  const b = new Uint8Array(MsgV2.size);
  const v = new DataView(b.buffer);
  v.setUint32(MsgV2.fields.type.offset, VHOST_IOTLB_MSG_V2, true);
  v.setUint32(MsgV2.fields.asid.offset, 0, true);
  v.setBigUint64(MsgV2.fields.iova.offset, m.iova ?? 0n, true);
  v.setBigUint64(MsgV2.fields.size.offset, m.size ?? 0n, true);
  v.setBigUint64(MsgV2.fields.uaddr.offset, m.uaddr ?? 0n, true);
  v.setUint8(MsgV2.fields.perm.offset, m.perm ?? 0);
  v.setUint8(MsgV2.fields.iotlbType.offset, m.type);
  return b;
}

/**
 * VHOST_GET_VRING_BASE's `num` as a queue state (drivers/vhost/vhost.c vhost_vring_ioctl, with
 * drivers/vhost/vdpa.c filling last_avail_idx / last_used_idx from the parent's get_vq_state):
 * split: the next available index the device will fetch, bits 0–15; packed: bits 0–15 are
 * last_avail_idx | avail wrap counter << 15, bits 16–31 last_used_idx | used wrap counter << 15 —
 * each half is the provisional packed encoding (index | wrap << 15) uvirtio's VqState uses.
 * For a split ring `used` is undefined: the device's used index is used->idx in ring memory.
 */
export function decodeVringBase(num: number, packed: boolean): { avail: number; used?: number } {
  return packed ? { avail: num & 0xffff, used: (num >>> 16) & 0xffff } : { avail: num & 0xffff };
}

/** The `num` for VHOST_SET_VRING_BASE (the inverse of decodeVringBase): split avail index; packed avail | used << 16. */
export function encodeVringBase(state: { avail: number; used: number }, packed: boolean): number {
  return packed ? ((state.avail & 0xffff) | ((state.used & 0xffff) << 16)) >>> 0 : state.avail & 0xffff;
}

/** The mask of the backend features to ask for: what is offered, of WANTED_BACKEND_FEATURES, less `without`. */
export function backendFeaturesToAsk(offered: bigint, without: readonly number[] = []): bigint {
  let ask = 0n;
  for (const f of WANTED_BACKEND_FEATURES) {
    if (!without.includes(f) && (offered & (1n << BigInt(f))) !== 0n) ask |= 1n << BigInt(f);
  }
  return ask;
}

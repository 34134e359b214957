// The vhost-vdpa ABI the transport speaks (lib/transport/vhost-vdpa/uapi.ts) against the values of
// Linux 6.12's include/uapi/linux/vhost.h and vhost_types.h, written out here by hand from the
// header definitions (_IOR(VHOST_VIRTIO=0xAF, nr, size) = 0x80000000 | size << 16 | 0xAF << 8 | nr,
// _IOW 0x40000000, _IOWR 0xC0000000, _IO no size): a table built wrong by the encoder shows here.
import t from 'tap';
import {
  BackendFeature, IotlbAccess, IotlbMsg, IotlbType, MsgV2, VdpaConfig, VdpaIoctl, VdpaIovaRange, VHOST_IOTLB_MSG_V2, VringAddr, VringFile, VringState,
  backendFeaturesToAsk, decodeVringBase, encodeMsgV2, encodeVringBase,
} from '../../lib/transport/vhost-vdpa/uapi.js';

t.test('every ioctl number is the header definition, encoded', async (t) => {
  const expected: Record<keyof typeof VdpaIoctl, number> = {
    GET_FEATURES: 0x8008af00, // _IOR(VHOST_VIRTIO, 0x00, __u64)
    SET_FEATURES: 0x4008af00, // _IOW(VHOST_VIRTIO, 0x00, __u64)
    SET_OWNER: 0x0000af01, // _IO(VHOST_VIRTIO, 0x01)
    SET_VRING_NUM: 0x4008af10, // _IOW(…, 0x10, struct vhost_vring_state) — 8 bytes
    SET_VRING_ADDR: 0x4028af11, // _IOW(…, 0x11, struct vhost_vring_addr) — 40 bytes
    SET_VRING_BASE: 0x4008af12,
    GET_VRING_BASE: 0xc008af12, // _IOWR(…, 0x12, struct vhost_vring_state)
    SET_VRING_KICK: 0x4008af20, // _IOW(…, 0x20, struct vhost_vring_file) — 8 bytes
    SET_VRING_CALL: 0x4008af21,
    SET_BACKEND_FEATURES: 0x4008af25,
    GET_BACKEND_FEATURES: 0x8008af26,
    GET_DEVICE_ID: 0x8004af70, // _IOR(…, 0x70, __u32)
    GET_STATUS: 0x8001af71, // _IOR(…, 0x71, __u8)
    SET_STATUS: 0x4001af72,
    GET_CONFIG: 0x8008af73, // _IOR(…, 0x73, struct vhost_vdpa_config) — 8 bytes (buf[] is flexible)
    SET_CONFIG: 0x4008af74,
    SET_VRING_ENABLE: 0x4008af75,
    GET_VRING_NUM: 0x8002af76, // _IOR(…, 0x76, __u16)
    SET_CONFIG_CALL: 0x4004af77, // _IOW(…, 0x77, int)
    GET_IOVA_RANGE: 0x8010af78, // _IOR(…, 0x78, struct vhost_vdpa_iova_range) — 16 bytes
    GET_CONFIG_SIZE: 0x8004af79,
    SUSPEND: 0x0000af7d, // _IO(VHOST_VIRTIO, 0x7D)
    RESUME: 0x0000af7e, // _IO(VHOST_VIRTIO, 0x7E)
    GET_VQS_COUNT: 0x8004af80, // _IOR(…, 0x80, __u32)
  };
  for (const [name, value] of Object.entries(expected)) {
    t.equal(VdpaIoctl[name as keyof typeof VdpaIoctl], value, `VHOST_${name} = 0x${value.toString(16)}`);
  }
  t.equal(Object.keys(VdpaIoctl).length, Object.keys(expected).length, 'no request without its expected value');
});

t.test('struct layouts: sizes and offsets of vhost_types.h', async (t) => {
  const off = (l: { fields: Record<string, { offset: number }> }): Record<string, number> =>
    Object.fromEntries(Object.entries(l.fields).map(([k, f]) => [k, f.offset]));
  t.equal(VringState.size, 8);
  t.same(off(VringState), { index: 0, num: 4 });
  t.equal(VringFile.size, 8);
  t.same(off(VringFile), { index: 0, fd: 4 });
  t.equal(VringFile.fields.fd.type, 's32', 'vhost_vring_file.fd is a signed int (-1 unbinds)');
  t.equal(VringAddr.size, 40);
  t.same(off(VringAddr), { index: 0, flags: 4, desc_user_addr: 8, used_user_addr: 16, avail_user_addr: 24, log_guest_addr: 32 },
    'vhost_vring_addr: used before avail');
  t.equal(VdpaConfig.size, 8);
  t.same(off(VdpaConfig), { off: 0, len: 4 });
  t.equal(VdpaIovaRange.size, 16);
  t.same(off(VdpaIovaRange), { first: 0, last: 8 });
  t.equal(IotlbMsg.size, 32, 'vhost_iotlb_msg: 3 × u64 + 2 × u8, padded to 8');
  t.same(off(IotlbMsg), { iova: 0, size: 8, uaddr: 16, perm: 24, type: 25 });
  t.equal(MsgV2.size, 72, 'vhost_msg_v2: type, asid, then a 64-byte union');
  t.same(off(MsgV2), { type: 0, asid: 4, iova: 8, size: 16, uaddr: 24, perm: 32, iotlbType: 33 });
});

t.test('constants of vhost_types.h', async (t) => {
  t.same(BackendFeature, { IOTLB_MSG_V2: 1, IOTLB_BATCH: 2, IOTLB_ASID: 3, SUSPEND: 4, RESUME: 5, ENABLE_AFTER_DRIVER_OK: 6, DESC_ASID: 7, IOTLB_PERSIST: 8 });
  t.same(IotlbType, { MISS: 1, UPDATE: 2, INVALIDATE: 3, ACCESS_FAIL: 4, BATCH_BEGIN: 5, BATCH_END: 6 });
  t.same(IotlbAccess, { RO: 1, WO: 2, RW: 3 });
  t.equal(VHOST_IOTLB_MSG_V2, 2);
});

t.test('an IOTLB update is 72 bytes in the order the kernel reads them', async (t) => {
  const b = encodeMsgV2({ type: IotlbType.UPDATE, iova: 0x1_0000_0000n, size: 0x400_0000n, uaddr: 0x7f12_3456_7000n, perm: IotlbAccess.RW });
  t.equal(b.length, 72);
  const v = new DataView(b.buffer);
  t.equal(v.getUint32(0, true), 2, 'type VHOST_IOTLB_MSG_V2');
  t.equal(v.getUint32(4, true), 0, 'asid 0');
  t.equal(v.getBigUint64(8, true), 0x1_0000_0000n, 'iova');
  t.equal(v.getBigUint64(16, true), 0x400_0000n, 'size');
  t.equal(v.getBigUint64(24, true), 0x7f12_3456_7000n, 'uaddr');
  t.equal(b[32], 3, 'perm VHOST_ACCESS_RW');
  t.equal(b[33], 2, 'type VHOST_IOTLB_UPDATE');
  t.ok(b.subarray(34).every((x) => x === 0), 'the rest of the union is zero');
  const end = encodeMsgV2({ type: IotlbType.BATCH_END });
  t.equal(end[33], 6, 'BATCH_END');
  t.equal(new DataView(end.buffer).getBigUint64(8, true), 0n, 'a batch bracket carries no range');
});

t.test('GET/SET_VRING_BASE num: split avail index; packed avail|wrap<<15 and used|wrap<<15 in two halves', async (t) => {
  t.same(decodeVringBase(0x1234, false), { avail: 0x1234 }, 'split: the next available index; used is in ring memory');
  t.same(decodeVringBase(0xffff, false), { avail: 0xffff });
  t.same(decodeVringBase(0x8005_8003, true), { avail: 0x8003, used: 0x8005 }, 'packed: slot 3 wrap 1 available, slot 5 wrap 1 used');
  t.same(decodeVringBase(0x0007_0002, true), { avail: 2, used: 7 }, 'packed, wrap counters 0');
  t.equal(encodeVringBase({ avail: 0x8003, used: 0x8005 }, true), 0x8005_8003);
  t.equal(encodeVringBase({ avail: 0x8000, used: 0x8000 }, true), 0x8000_8000, 'a fresh packed ring: both wrap counters 1');
  t.equal(encodeVringBase({ avail: 70000, used: 3 }, false), 70000 & 0xffff, 'split: 16 bits');
  for (const num of [0, 1, 0x8000_8000, 0xffff_ffff, 0x1234_5678]) {
    const s = decodeVringBase(num, true);
    t.equal(encodeVringBase({ avail: s.avail, used: s.used! }, true), num >>> 0, `packed 0x${num.toString(16)} round-trips`);
  }
});

t.test('backend features asked for: what is offered of IOTLB_MSG_V2, BATCH, SUSPEND, RESUME, IOTLB_PERSIST', async (t) => {
  t.equal(backendFeaturesToAsk(0x17en), 0x136n, 'vdpa_sim offers 0x17e; ASID and ENABLE_AFTER_DRIVER_OK are not asked for');
  t.equal(backendFeaturesToAsk(0x17en, [BackendFeature.SUSPEND]), 0x126n, 'suspend=0 leaves SUSPEND out');
  t.equal(backendFeaturesToAsk(0x6n), 0x6n, 'an older kernel: IOTLB_MSG_V2 and BATCH only');
  t.equal(backendFeaturesToAsk(0n), 0n);
  t.equal(backendFeaturesToAsk(1n << 40n), 0n, 'unknown bits are never echoed');
});

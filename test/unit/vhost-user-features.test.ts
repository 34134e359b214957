// vhost-user's own bits in GET_FEATURES (QEMU docs/interop/vhost-user.rst: VHOST_USER_F_PROTOCOL_FEATURES,
// bit 30; VHOST_F_LOG_ALL, bit 26) are not the device's: a driver on a vhost-user transport never
// sees them offered (virtio 1.2 §6 reserves both positions for a modern device).
import t from 'tap';
import { F_LOG_ALL, F_PROTOCOL_FEATURES, deviceFeatureBits } from '../../lib/transport/vhost-user/protocol.js';
import { Feature, bit } from '../../lib/spec/index.js';

t.test('deviceFeatureBits drops bits 26 and 30 and keeps every other', async (t) => {
  t.equal(F_LOG_ALL, 26);
  t.equal(F_PROTOCOL_FEATURES, 30);
  // An offer like a vhost-user-blk back-end's: VERSION_1, bits 30 and 26, and some blk/ring bits.
  t.equal(deviceFeatureBits(0x144006e54n), 0x100006e54n, 'an offer with 26 and 30 set loses exactly those');
  const device = bit(Feature.VERSION_1) | bit(Feature.EVENT_IDX) | bit(Feature.INDIRECT_DESC) | bit(Feature.RING_PACKED) | 0xffffffn;
  t.equal(deviceFeatureBits(device), device, 'device bits pass unchanged');
  t.equal(deviceFeatureBits(device | (1n << 26n)), device, 'bit 26 alone is dropped');
  t.equal(deviceFeatureBits(device | (1n << 30n)), device, 'bit 30 alone is dropped');
  t.equal(deviceFeatureBits(0n), 0n);
});

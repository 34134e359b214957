// The vhost-user transport offers a driver the back-end's device features only: VHOST_F_LOG_ALL
// (bit 26) and VHOST_USER_F_PROTOCOL_FEATURES (bit 30) are vhost-user's (QEMU
// docs/interop/vhost-user.rst), so they are not offered, a driver accepting one gets FEATURES_OK
// refused (virtio 1.2 §2.2.2 as the transport applies it), and SET_FEATURES never carries LOG_ALL.
import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import { Feature, Status, bit } from '../../lib/spec/index.js';
import { FakeBackend } from './fake-backend.js';

const LOG_ALL = 1n << 26n;
const PROTOCOL = 1n << 30n;
const DEVICE = bit(Feature.VERSION_1) | bit(Feature.EVENT_IDX);

t.test('bits 26 and 30 of GET_FEATURES are not device features', async (t) => {
  const f = await FakeBackend.start({ features: DEVICE | LOG_ALL | PROTOCOL });
  t.teardown(() => f.close());
  const { transport } = await openTransport(`${f.address}?timeout=2000`);
  t.teardown(() => transport.close());
  t.equal(transport.deviceFeatures(), DEVICE, `offered 0x${transport.deviceFeatures().toString(16)}: VERSION_1 | EVENT_IDX only`);

  // A driver that accepts bit 26 anyway: FEATURES_OK does not stick.
  transport.writeStatus(0);
  transport.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  transport.writeDriverFeatures(DEVICE | LOG_ALL);
  transport.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  await transport.flush?.(2000);
  t.equal(transport.readStatus() & Status.FEATURES_OK, 0, 'accepting LOG_ALL: FEATURES_OK refused');

  // The device's own bits: accepted; SET_FEATURES carries them plus bit 30, never bit 26.
  transport.writeStatus(0);
  transport.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  transport.writeDriverFeatures(DEVICE);
  transport.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  await transport.flush?.(2000);
  t.equal(transport.readStatus() & Status.FEATURES_OK, Status.FEATURES_OK, 'the offered bits: FEATURES_OK sticks');
  const set = f.received.flat().filter((m) => m.request === Req.SET_FEATURES).map((m) => m.payload.readBigUInt64LE(0));
  t.ok(set.length > 0, 'SET_FEATURES was sent');
  t.same(set.filter((v) => (v & LOG_ALL) !== 0n), [], 'no SET_FEATURES carries VHOST_F_LOG_ALL');
  t.equal(set.at(-1), DEVICE | PROTOCOL, 'the last SET_FEATURES: the driver\'s bits and VHOST_USER_F_PROTOCOL_FEATURES');
});

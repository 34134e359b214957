// Breaker 30: a vhost-user-blk back-end that contradicts itself — VIRTIO_BLK_F_MQ with num_queues 4
// in its configuration (GET_CONFIG), but GET_QUEUE_NUM 1 (the rings it actually has). BlkDriver.open,
// given no queue option at all, sets up queue 1, which the transport does not have
// (queueMaxSize(1) is 0), and fails with the CALLER's code: UsageError E_INVALID_ARGUMENT "queue
// size must be an integer from 1 to 32768, got 0" (README "Failure semantics": E_INVALID_ARGUMENT is
// the caller's input, "fix the call"). Expected: either the driver uses the queues the back-end
// has (min(num_queues, GET_QUEUE_NUM)), or it refuses the device with a device-side code
// (E_CAP_INVALID, as for an impossible blk_size) — never blame an argument nobody passed.
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import { Feature, bit } from '../../lib/spec/index.js';
import { UsageError, isUvirtioError } from '../../lib/errors.js';
import { FakeBackend, FAKE_CAPACITY, reply } from './fake-backend.js';

const BLK_F_MQ = 12;
const FEATURES = bit(Feature.VERSION_1) | (1n << 30n) | (1n << BigInt(BLK_F_MQ));

t.test('num_queues 4 in the configuration, GET_QUEUE_NUM 1: BlkDriver.open does not fail with the caller\'s E_INVALID_ARGUMENT', async (t) => {
  const config = Buffer.alloc(60);
  config.writeBigUInt64LE(FAKE_CAPACITY, 0);
  config.writeUInt16LE(4, 34); // num_queues (virtio 1.2 §5.2.4)
  const f = await FakeBackend.start({
    features: FEATURES,
    script: (m) => (m.request === Req.GET_CONFIG ? { kind: 'raw', bytes: reply(Req.GET_CONFIG, Buffer.concat([m.payload.subarray(0, 12), config])) } : undefined),
  });
  t.teardown(() => f.close());
  const { transport } = await openTransport(`${f.address}?timeout=2000`);
  t.teardown(() => transport.close());
  t.equal(transport.numQueues, 1, 'the back-end has one ring (GET_QUEUE_NUM 1)');

  const r = await BlkDriver.open(transport).then((blk) => blk, (x: unknown) => x);
  if (r instanceof BlkDriver) {
    t.teardown(() => r.close());
    t.pass('opened on the ring the back-end has');
    return;
  }
  t.comment(isUvirtioError(r) ? `${r.constructor.name} ${r.code}: ${r.message} (hint: ${r.hint})` : String(r));
  t.ok(isUvirtioError(r), 'a UvirtioError');
  t.not(isUvirtioError(r) && r.code, 'E_INVALID_ARGUMENT', 'not the caller\'s E_INVALID_ARGUMENT: no argument was passed');
  t.notOk(r instanceof UsageError, 'not a UsageError: the back-end\'s answers disagree, the call was fine');
});

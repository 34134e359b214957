// Breaker 30: a vhost-user-net back-end that offers VIRTIO_NET_F_CTRL_VQ (bit 17; DPDK's vhost
// library offers it — with vhost-user the control queue is QEMU's to emulate, not one of the
// back-end's rings) and has one queue pair (GET_QUEUE_NUM 1: rings 0 and 1). NetDriver.open with
// default options negotiates CTRL_VQ and sets up the control queue at index 2, which the transport
// does not have (queueMaxSize(2) is 0): it fails with the CALLER's code, UsageError
// E_INVALID_ARGUMENT "queue size must be an integer from 1 to 32768, got 0". The same happens with
// MQ when max_virtqueue_pairs exceeds GET_QUEUE_NUM. Expected: a driver that opens on the rings the
// back-end has (CTRL_VQ not negotiated, as the driver does for queuePairs 1), or a device-side
// refusal — never an invalid-argument error for an open with no arguments.
import t from 'tap';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport } from '../../lib/open.js';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import { Feature, bit } from '../../lib/spec/index.js';
import { UsageError, isUvirtioError } from '../../lib/errors.js';
import { FakeBackend, reply } from './fake-backend.js';

const NET_F_MAC = 5n;
const NET_F_CTRL_VQ = 17n;
const NET_F_MQ = 22n;
const PROTOCOL = 1n << 30n;

/** A net back-end with one queue pair (the fake's GET_QUEUE_NUM is 1) offering `extra`; config: a MAC, max_virtqueue_pairs `pairs`. */
async function backend(extra: bigint, pairs: number): Promise<FakeBackend> {
  return FakeBackend.start({
    features: bit(Feature.VERSION_1) | PROTOCOL | (1n << NET_F_MAC) | extra,
    script: (m) => {
      if (m.request !== Req.GET_CONFIG) return undefined;
      const config = Buffer.alloc(m.payload.readUInt32LE(4));
      config.set([0x52, 0x54, 0, 0x12, 0x34, 0x56], 0);
      config.writeUInt16LE(pairs, 8); // max_virtqueue_pairs (virtio 1.2 §5.1.4)
      return { kind: 'raw', bytes: reply(Req.GET_CONFIG, Buffer.concat([m.payload.subarray(0, 12), config])) };
    },
  });
}

const cases = [
  { name: 'CTRL_VQ offered, one queue pair', extra: 1n << NET_F_CTRL_VQ, pairs: 1 },
  { name: 'CTRL_VQ and MQ offered, max_virtqueue_pairs 4, GET_QUEUE_NUM 1', extra: (1n << NET_F_CTRL_VQ) | (1n << NET_F_MQ), pairs: 4 },
];

for (const c of cases) {
  t.test(`${c.name}: NetDriver.open() does not fail with the caller's E_INVALID_ARGUMENT`, async (t) => {
    const f = await backend(c.extra, c.pairs);
    t.teardown(() => f.close());
    const { transport } = await openTransport(`${f.address}?type=net&timeout=2000`);
    t.teardown(() => transport.close());
    t.equal(transport.numQueues, 2, 'the back-end has rings 0 and 1 only');
    const r = await NetDriver.open(transport).then((net) => net, (x: unknown) => x);
    if (r instanceof NetDriver) {
      t.teardown(() => r.close());
      t.pass('opened on the rings the back-end has');
      return;
    }
    t.comment(isUvirtioError(r) ? `${r.constructor.name} ${r.code}: ${r.message}` : String(r));
    t.ok(isUvirtioError(r), 'a UvirtioError');
    t.not(isUvirtioError(r) && r.code, 'E_INVALID_ARGUMENT', 'not the caller\'s E_INVALID_ARGUMENT: open() was given no argument');
    t.notOk(r instanceof UsageError, 'not a UsageError');
  });
}

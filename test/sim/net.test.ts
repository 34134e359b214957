// virtio-net loopback: a frame sent on tx0 comes back on rx0 behind a virtio_net_hdr.
import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { Feature, NET_HDR_LEN, NetConfig, NetFeature, NetStatus, bit } from '../../lib/spec/index.js';
import { PackedRing, SimDriver, SplitRing, ruleIds, settle } from '../support/sim-driver.js';

const RX = 0;
const TX = 1;

function bringUp(packed = false, mac?: string) {
  const sim = createSimDevice({ type: 'net', ...(mac ? { mac } : {}) });
  const d = new SimDriver(sim);
  d.start(bit(NetFeature.MAC) | bit(NetFeature.STATUS) | (packed ? bit(Feature.RING_PACKED) : 0n));
  const rx = packed ? new PackedRing(d, 8) : new SplitRing(d, 8);
  const tx = packed ? new PackedRing(d, 8) : new SplitRing(d, 8);
  d.setupQueue(RX, rx);
  d.setupQueue(TX, tx);
  d.driverOk();
  return { sim, d, rx, tx };
}

function frame(n: number, len = 60): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (n + i) & 0xff);
}

function send(d: SimDriver, tx: SplitRing | PackedRing, bytes: Uint8Array): void {
  const buf = d.alloc(NET_HDR_LEN + bytes.length);
  buf.bytes.set(bytes, NET_HDR_LEN);
  tx.add([{ addr: buf.iova, len: buf.size }]);
  d.notify(TX);
}

function post(d: SimDriver, rx: SplitRing | PackedRing, len = 1526) {
  const buf = d.alloc(len);
  rx.add([{ addr: buf.iova, len, write: true }]);
  d.notify(RX);
  return buf;
}

t.test('config: MAC and link status', async (t) => {
  const { d, sim } = bringUp(false, '02:00:00:aa:bb:cc');
  t.same([0, 1, 2, 3, 4, 5].map((i) => d.config8(NetConfig.MAC + i)), [2, 0, 0, 0xaa, 0xbb, 0xcc]);
  t.equal(d.config16(NetConfig.STATUS), NetStatus.LINK_UP);
  t.same([...sim.mac], [2, 0, 0, 0xaa, 0xbb, 0xcc]);
  t.equal(d.config16(NetConfig.MAC), 0, 'mac is bytes: a 16-bit read reads 0');
  sim.setLinkUp(false);
  t.equal(d.config16(NetConfig.STATUS), 0);
  t.throws(() => createSimDevice({ type: 'net', mac: '02:00' }), { code: 'E_INVALID_ARGUMENT' });
});

for (const packed of [false, true]) {
  t.test(`${packed ? 'packed' : 'split'}: a transmitted frame comes back with the 12-byte header`, async (t) => {
    const { d, rx, tx, sim } = bringUp(packed);
    const rxBuf = post(d, rx);
    await settle();
    t.same(rx.takeUsed(), [], 'rx buffers wait while there is nothing to receive');
    send(d, tx, frame(1));
    await settle();
    t.same(tx.takeUsed().map((u) => u.len), [0], 'tx buffer returned, nothing written');
    const used = rx.takeUsed();
    t.equal(used.length, 1);
    t.equal(used[0]!.len, NET_HDR_LEN + 60);
    const hdr = new DataView(rxBuf.bytes.buffer, rxBuf.bytes.byteOffset, NET_HDR_LEN);
    t.equal(hdr.getUint8(0), 0, 'flags');
    t.equal(hdr.getUint16(10, true), 1, 'num_buffers = 1');
    t.same(rxBuf.bytes.subarray(NET_HDR_LEN, NET_HDR_LEN + 60), frame(1));
    t.same(sim.stats.completed, [0, 1], 'tx counts as a request');
    t.ok(sim.stats.interrupts[RX]! >= 1);
  });
}

t.test('frames wait in the device until rx buffers are posted, in order', async (t) => {
  const { d, rx, tx } = bringUp();
  send(d, tx, frame(10));
  send(d, tx, frame(20));
  await settle();
  t.equal(tx.takeUsed().length, 2);
  t.same(rx.takeUsed(), []);
  const a = post(d, rx);
  await settle();
  t.equal(rx.takeUsed().length, 1);
  t.same(a.bytes.subarray(NET_HDR_LEN, NET_HDR_LEN + 60), frame(10));
  const b = post(d, rx);
  await settle();
  t.equal(rx.takeUsed().length, 1);
  t.same(b.bytes.subarray(NET_HDR_LEN, NET_HDR_LEN + 60), frame(20));
});

t.test('link down drops frames; a too-small rx buffer drops the frame and returns empty', async (t) => {
  const { d, rx, tx, sim } = bringUp();
  sim.setLinkUp(false);
  send(d, tx, frame(1));
  post(d, rx);
  await settle();
  t.equal(sim.dropped, 1);
  t.same(rx.takeUsed(), [], 'nothing arrives');
  sim.setLinkUp(true);
  send(d, tx, frame(2, 200));
  await settle();
  t.same(rx.takeUsed().map((u) => u.len), [NET_HDR_LEN + 200], 'the posted buffer takes the next frame');
  post(d, rx, 64);
  send(d, tx, frame(3, 200));
  await settle();
  t.same(rx.takeUsed().map((u) => u.len), [0]);
  t.equal(sim.dropped, 2);
});

t.test('a tx chain shorter than the header is a driver error', async (t) => {
  const { d, tx, sim } = bringUp();
  const buf = d.alloc(4);
  tx.add([{ addr: buf.iova, len: 4 }]);
  d.notify(TX);
  await settle();
  t.ok(d.status & 64, 'DEVICE_NEEDS_RESET');
  t.match(sim.failure?.message, /shorter than the 12-byte/);
  t.same(ruleIds(sim), ['net-tx-malformed'], 'recorded');
});

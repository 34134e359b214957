// NetDriver on the reference device, split and packed: frames end to end with checksums, headers
// both ways, MRG_RXBUF frames larger than one receive buffer, several queue pairs after
// VQ_PAIRS_SET, two NICs on one cable, oversized frames, polling and MSI-X.

import t from 'tap';
import { createHash } from 'node:crypto';
import { createSimDevice, type SimNetOptions } from '../../lib/sim/index.js';
import { mqCommand } from '../../lib/sim/models/net-ctrl.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver, decodeNetHeader, encodeNetHeader, type NetOpenOptions, type ReceivedFrame } from '../../drivers/net/index.js';
import { NET_HDR_LEN, NetFeature, NetCtrl, NetGso, NetHdrFlag } from '../../lib/spec/index.js';
import { codeOfAsync } from '../support/codes.js';

async function bringUp(t: { teardown(fn: () => unknown): void }, sim: Omit<SimNetOptions, 'type'> = {}, driver: NetOpenOptions = {}) {
  const dev = createSimDevice({ type: 'net', ...sim });
  const net = await NetDriver.open(new VirtioPciTransport(dev.fn), driver);
  t.teardown(() => net.close());
  const got: ReceivedFrame[] = [];
  net.onFrame((f) => got.push(f));
  return { sim: dev, net, got };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
}

function frame(seq: number, len: number): Uint8Array {
  const f = Uint8Array.from({ length: len }, (_, i) => (seq * 31 + i * 7) & 0xff);
  new DataView(f.buffer).setUint32(0, seq, true);
  return f;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');


for (const layout of ['split', 'packed'] as const) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}: frames of every size come back once, intact`, async (t) => {
      const { net, got } = await bringUp(t, {}, { layout, interrupts });
      t.equal(net.device.interruptMode, interrupts === 'auto' ? 'msix' : 'poll');
      const sent = [60, 64, 200, 1000, 1514].flatMap((len, k) => Array.from({ length: 20 }, (_, i) => frame(k * 20 + i, len)));
      await Promise.all(sent.map((f) => net.send(f)));
      await until(() => got.length >= sent.length);
      t.same(got.map((f) => sha(f.frame)).sort(), sent.map(sha).sort(), 'every frame once, checksums equal');
      t.ok(got.every((f) => f.hdr.numBuffers === 1 && f.pair === 0));
    });
  }

  t.test(`${layout}: MRG_RXBUF: a 1500-byte frame spans six 256-byte buffers and is put back together`, async (t) => {
    const { sim, net, got } = await bringUp(t, { mergeable: true }, { layout, rxBufferSize: 256, rxBuffers: 64, mtu: 9000 });
    t.ok(net.device.has(NetFeature.MRG_RXBUF));
    const sent = [frame(1, 1500), frame(2, 60), frame(3, 9000), frame(4, 244)];
    for (const f of sent) await net.send(f);
    await until(() => got.length >= sent.length);
    t.same(got.map((f) => sha(f.frame)), sent.map(sha), 'in order, intact');
    t.same(got.map((f) => f.hdr.numBuffers), [6, 1, 36, 1], 'num_buffers = ⌈(12 + length) / 256⌉');
    t.equal(sim.dropped, 0);
  });

  t.test(`${layout}: without MRG_RXBUF offered, each buffer holds a whole frame`, async (t) => {
    const { net, got } = await bringUp(t, {}, { layout, rxBufferSize: 256 });
    t.notOk(net.device.has(NetFeature.MRG_RXBUF));
    await net.send(frame(1, 1514));
    await until(() => got.length >= 1);
    t.equal(got[0]?.frame.length, 1514);
  });

  t.test(`${layout}: four queue pairs after VQ_PAIRS_SET; tx on pair i comes back on rx of pair i`, async (t) => {
    const { sim, net, got } = await bringUp(t, { queuePairs: 4 }, { layout });
    t.equal(net.queuePairs, 4);
    t.equal(net.activePairs, 4);
    t.equal(sim.activePairs, 4, 'the device acknowledged VQ_PAIRS_SET 4');
    for (let p = 0; p < 4; p++) for (let i = 0; i < 5; i++) await net.send(frame(p * 10 + i, 100), {}, p);
    await until(() => got.length >= 20);
    t.same(got.map((f) => [f.pair, new DataView(f.frame.buffer, f.frame.byteOffset).getUint32(0, true) / 10 | 0]).filter(([a, b]) => a !== b), [], 'each frame on its own pair');
    t.same(sim.stats.completed.slice(0, 8), [0, 5, 0, 5, 0, 5, 0, 5], 'five transmits on each tx queue');
    t.equal(sim.stats.completed[8], 1, 'one control command');
    await net.setQueuePairs(2);
    t.equal(sim.activePairs, 2);
    t.equal(await codeOfAsync(net.send(frame(1, 100), {}, 3)), 'E_INVALID_ARGUMENT', 'pair 3 is no longer in use');
    t.equal(await codeOfAsync(net.setQueuePairs(5)), 'E_INVALID_ARGUMENT');
    got.length = 0;
    await Promise.all(Array.from({ length: 8 }, (_, i) => net.send(frame(i, 80))));
    await until(() => got.length >= 8);
    t.same([...new Set(got.map((f) => f.pair))].sort(), [0, 1], 'sends spread over the pairs in use');
  });
}

t.test('the device only uses pair 0 until VQ_PAIRS_SET; it answers ERR to counts out of range', async (t) => {
  const { sim, net } = await bringUp(t, { queuePairs: 3 }, { queuePairs: 1 });
  t.equal(net.queuePairs, 1, 'queuePairs 1 declines the control queue');
  t.notOk(net.device.has(NetFeature.CTRL_VQ));
  t.equal(sim.activePairs, 1);
  const set = (n: number): Uint8Array => Uint8Array.of(NetCtrl.CLASS_MQ, NetCtrl.MQ_VQ_PAIRS_SET, n & 0xff, n >> 8);
  t.same(mqCommand(set(3), true, 3), { ack: NetCtrl.ACK_OK, pairs: 3 });
  t.same(mqCommand(set(0), true, 3), { ack: NetCtrl.ACK_ERR });
  t.same(mqCommand(set(4), true, 3), { ack: NetCtrl.ACK_ERR });
  t.same(mqCommand(set(2), false, 3), { ack: NetCtrl.ACK_ERR }, 'MQ not negotiated');
  t.same(mqCommand(Uint8Array.of(0, 0, 1), true, 3), { ack: NetCtrl.ACK_ERR }, 'another class');
});

t.test('headers: offload metadata encodes on send and decodes on receive', async (t) => {
  const bytes = new Uint8Array(NET_HDR_LEN).fill(0xee);
  const h = { flags: NetHdrFlag.NEEDS_CSUM, gsoType: NetGso.TCPV4, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 };
  encodeNetHeader(h, bytes);
  t.same(decodeNetHeader(bytes), { ...h, numBuffers: 0 }, 'num_buffers is 0 on transmit');
  const { net, got } = await bringUp(t);
  await net.send(frame(5, 300), h);
  await until(() => got.length >= 1);
  t.same(got[0]!.hdr, { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, numBuffers: 1 }, 'the device wrote a fresh header');
  t.same(got[0]!.header, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0));
});

t.test('oversized and empty frames: E_FRAME_TOO_LARGE before the device', async (t) => {
  const { sim, net } = await bringUp(t);
  t.equal(await codeOfAsync(net.send(new Uint8Array(1515))), 'E_FRAME_TOO_LARGE');
  t.equal(await codeOfAsync(net.send(new Uint8Array(0))), 'E_FRAME_TOO_LARGE');
  t.equal(sim.stats.completed[1], 0);
});

t.test('two NICs joined by a cable: what one sends, the other receives', async (t) => {
  const a = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0a' });
  const b = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0b', peer: a });
  const na = await NetDriver.open(new VirtioPciTransport(a.fn));
  const nb = await NetDriver.open(new VirtioPciTransport(b.fn));
  t.teardown(async () => {
    await na.close();
    await nb.close();
  });
  const atA: ReceivedFrame[] = [];
  const atB: ReceivedFrame[] = [];
  na.onFrame((f) => atA.push(f));
  nb.onFrame((f) => atB.push(f));
  await na.send(frame(1, 100));
  await nb.send(frame(2, 200));
  await nb.send(frame(3, 300));
  await until(() => atA.length >= 2 && atB.length >= 1);
  t.same(atB.map((f) => f.frame.length), [100]);
  t.same(atA.map((f) => f.frame.length), [200, 300]);
  b.setLinkUp(false);
  await na.send(frame(4, 100));
  t.equal(a.dropped, 1, 'the far end unplugged: dropped');
});

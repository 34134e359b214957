// With MRG_RXBUF the receive buffers one queue keeps posted, min(rxBuffers, ring size) ×
// rxBufferSize, must together hold the 12-byte header and a frame of mtu bytes (virtio 1.2
// §5.1.6.3.1, §5.1.6.4.2): a frame send() accepts could otherwise never be placed — the reference
// device keeps it at the head of its backlog waiting for buffers that cannot exist, and every frame
// behind it waits for ever. NetDriver.open refuses such options with E_INVALID_ARGUMENT naming the
// numbers and the option to raise; the smallest setup that holds a frame opens, and a frame of the
// full mtu arrives.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}, MRG_RXBUF: a receive ring smaller than one MTU frame is refused at open`, async (t) => {
    const sim = createSimDevice({ type: 'net', mergeable: true });
    // 4 × 1526 = 6104 < 12 + 9000: the ring size is the limit.
    await t.rejects(NetDriver.open(new VirtioPciTransport(sim.fn), { layout, queueSize: 4, rxBufferSize: 1526, mtu: 9000 }),
      { code: 'E_INVALID_ARGUMENT', message: /4 buffers.*rxBufferSize 1526 = 6104 bytes.*mtu 9000 = 9012/, hint: /rxBufferSize to at least 2253, or queueSize/ },
      'refused at open, naming the numbers; the hint names the option to raise');
    // 2 × 1526 < 9012 on a ring of 256: rxBuffers is the limit.
    await t.rejects(NetDriver.open(new VirtioPciTransport(createSimDevice({ type: 'net', mergeable: true }).fn), { layout, rxBuffers: 2, rxBufferSize: 1526, mtu: 9000 }),
      { code: 'E_INVALID_ARGUMENT', hint: /or rxBuffers to at least 6/ }, 'too few rxBuffers is refused too');
  });

  t.test(`${layout}, MRG_RXBUF: a receive ring that just holds one MTU frame opens and receives it`, async (t) => {
    const sim = createSimDevice({ type: 'net', mergeable: true });
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, queueSize: 4, rxBufferSize: 2253, mtu: 9000 });
    t.teardown(() => net.close());
    const got: number[] = [];
    net.onFrame((f) => got.push(f.frame.length));
    await net.send(new Uint8Array(9000).fill(1));
    await net.send(new Uint8Array(60).fill(2));
    for (let i = 0; i < 150 && !got.includes(60); i++) await sleep(2);
    t.same(got, [9000, 60], 'the mtu frame and the small one after it arrive');
  });
}

t.test('without MRG_RXBUF each buffer holds header + mtu: a small ring opens', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { queueSize: 4, rxBufferSize: 64, mtu: 9000 });
  t.teardown(() => net.close());
  const got: number[] = [];
  net.onFrame((f) => got.push(f.frame.length));
  await net.send(new Uint8Array(9000).fill(1));
  for (let i = 0; i < 150 && got.length === 0; i++) await sleep(2);
  t.same(got, [9000], 'the mtu frame arrives');
});

t.test('mtu must be a positive integer', async (t) => {
  for (const mtu of [0, -1, 1.5, Number.NaN]) {
    await t.rejects(NetDriver.open(new VirtioPciTransport(createSimDevice({ type: 'net' }).fn), { mtu }), { code: 'E_INVALID_ARGUMENT' }, `mtu ${mtu} is refused`);
  }
});

// Found by a breaker (fixed: bounds on mtu, rxBuffers and rxBufferSize). mtu 1e9 or rxBuffers 1e7
// were taken as given and the open failed later with E_DMA_EXHAUSTED, which sends a user looking
// for more DMA memory rather than at the option they mistyped.
t.test('mtu, rxBuffers and rxBufferSize beyond what virtio-net can use are refused by name, not found out as E_DMA_EXHAUSTED', async (t) => {
  const cases: [string, Record<string, number>, RegExp][] = [
    ['mtu 1e9', { mtu: 1e9 }, /mtu must be an integer from 1 to 65535, got 1000000000/],
    ['mtu 65536', { mtu: 65536 }, /mtu must be an integer from 1 to 65535/],
    ['rxBuffers 1e7', { rxBuffers: 1e7 }, /rxBuffers must be an integer from 1 to 32768/],
    ['rxBufferSize 1e9', { rxBufferSize: 1e9 }, /rxBufferSize must be an integer from 1 to 65547/],
  ];
  for (const [what, options, message] of cases) {
    await t.rejects(NetDriver.open(new VirtioPciTransport(createSimDevice({ type: 'net' }).fn), options), { code: 'E_INVALID_ARGUMENT', message }, what);
  }
  const net = await NetDriver.open(new VirtioPciTransport(createSimDevice({ type: 'net' }).fn), { mtu: 65535, rxBuffers: 4, queueSize: 4 });
  t.equal(net.maxFrame, 65535, 'the largest mtu opens');
  await net.close();
});

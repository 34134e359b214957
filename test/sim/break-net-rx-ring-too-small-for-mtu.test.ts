// NetDriver.open accepts a receive queue that can never hold a frame of its own MTU: with
// MRG_RXBUF it posts min(rxBuffers, queueSize) buffers of rxBufferSize bytes and checks only that
// one buffer holds the 12-byte header and a byte. With queueSize 4, rxBufferSize 1526 and mtu 9000
// (4 × 1526 < 12 + 9000) a 9000-byte frame — one send() accepts — can never be placed: the reference
// device keeps it at the head of its backlog waiting for buffers that cannot exist (fillMerged puts
// them back each time), counts nothing as dropped, and every frame behind it waits for ever.
// Either the options should be refused (E_INVALID_ARGUMENT, naming rxBuffers / queueSize /
// rxBufferSize against mtu), or a frame that cannot fit should be dropped (and counted) so the rest
// flows.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}, MRG_RXBUF: a receive ring smaller than one MTU frame is refused, or does not stall receive for good`, async (t) => {
    const sim = createSimDevice({ type: 'net', mergeable: true });
    let net: NetDriver;
    try {
      net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, queueSize: 4, rxBufferSize: 1526, mtu: 9000 });
    } catch (e) {
      t.match(e, { code: 'E_INVALID_ARGUMENT' }, 'refused at open');
      return;
    }
    t.teardown(() => net.close());
    const got: number[] = [];
    net.onFrame((f) => got.push(f.frame.length));
    await net.send(new Uint8Array(9000).fill(1)); // accepted: within the mtu
    await net.send(new Uint8Array(60).fill(2));
    for (let i = 0; i < 150 && !got.includes(60); i++) await sleep(2);
    t.ok(got.includes(60), `the small frame after the jumbo one arrives (got ${JSON.stringify(got)}, dropped ${sim.dropped})`);
  });
}

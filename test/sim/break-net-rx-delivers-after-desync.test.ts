// With MRG_RXBUF a receive buffer too short for the header (used len 6: the used-len-short fault)
// makes RxQueue.drop() fail the device — "the buffers after it would be read as frames of their own"
// (rx.ts) — but the used-ring pass goes on: the frame's continuation buffers, already in the used
// ring, are taken next and parsed as frames of their own. A continuation buffer whose bytes at the
// header's offsets look valid (gso_type not the poison, num_buffers 1) is delivered to onFrame as a
// frame: here two frames of 116 and 44 bytes cut out of the middle of one 300-byte frame, after the
// device was already failed (phase needs-reset). Nothing after a desync should be delivered until
// recover().

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}, MRG_RXBUF: after a receive desync no piece of a frame is delivered as a frame`, async (t) => {
    const onWarning = (): void => undefined;
    process.on('warning', onWarning);
    t.teardown(() => { process.off('warning', onWarning); });
    const sim = createSimDevice({ type: 'net', mergeable: true });
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts: 'msix', rxBufferSize: 128, rxBuffers: 16, queueSize: 16, mtu: 9000 });
    t.teardown(() => net.close());
    const got: number[] = [];
    net.onFrame((f) => got.push(f.frame.length));
    // 12 + 300 bytes over three 128-byte buffers; the second and third start at frame offsets 116
    // and 244: num_buffers (header offset 10) reads 1 there, gso_type (offset 1) 0.
    const frame = new Uint8Array(300).fill(0xab, 0, 100);
    for (const at of [116, 244]) {
      frame[at + 1] = 0;
      frame[at + 10] = 1;
    }
    sim.injectFault({ kind: 'used-len-short', queue: 0 });
    await net.send(frame);
    for (let i = 0; i < 100 && net.device.phase === 'live'; i++) await sleep(2);
    await sleep(10);
    t.equal(net.device.phase, 'needs-reset', 'the desync failed the device');
    t.same(got, [], 'no frame was delivered');
  });
}

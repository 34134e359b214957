// With MRG_RXBUF a receive buffer too short for the header (used len 6: the used-len-short fault)
// makes RxQueue.drop() fail the device: the frame boundaries are lost. The rest of that used-ring
// pass (the frame's continuation buffers, already in the used ring) must not be parsed as frames:
// a continuation buffer whose bytes at the header's offsets look valid (gso_type not the poison,
// num_buffers 1) would otherwise be delivered as a frame cut out of the middle of another. Nothing
// is delivered until recover(); then every buffer is posted again and frames flow.

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
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts: 'msix', rxBufferSize: 128, rxBuffers: 16, queueSize: 16 });
    t.teardown(() => net.close());
    const rx = (net as unknown as { queues: { get(i: number): { pending: number } } }).queues.get(0)!;
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
    t.equal(net.malformedFrames, 1, 'the short buffer was counted once, its continuations not at all');
    sim.clearFaults();
    await net.recover();
    t.equal(rx.pending, 16, 'recover() posts all 16 receive buffers again');
    await net.send(frame);
    for (let i = 0; i < 200 && got.length === 0; i++) await sleep(1);
    t.same(got, [300], 'after recover() the whole frame is delivered, once');
  });
}

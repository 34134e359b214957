// The reference device's receive queue after a put-back: on a split ring with EVENT_IDX and
// MRG_RXBUF, a frame that needs more buffers than are available makes the model give back the
// buffers it took (the device's position moves back). The device then asks to hear of the
// driver's next posting (avail_event at avail->idx, engine.ts wantNextPosting). Before this fix
// avail_event went to the device's position, an index the driver had already passed, so later
// postings never notified (§2.7.10) and receive stalled for good (25 of 200 frames). Found by a
// breaker (session 22); the polling budget had nothing to do with it (budget 0 here).

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver, type ReceivedFrame } from '../../drivers/net/index.js';

function frame(seq: number, len: number): Uint8Array {
  const f = Uint8Array.from({ length: len }, (_, i) => (seq * 31 + i * 7) & 0xff);
  new DataView(f.buffer).setUint32(0, seq, true);
  return f;
}

for (const interrupts of ['poll', 'msix'] as const) {
  t.test(`split, EVENT_IDX, MRG_RXBUF, ${interrupts}, pollBudget 0: 200 looped-back frames all arrive`, async (t) => {
    const sim = createSimDevice({ type: 'net', mergeable: true });
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout: 'split', interrupts, pollBudget: 0, rxBufferSize: 256, rxBuffers: 64, mtu: 9000 });
    t.teardown(() => net.close());
    const got: ReceivedFrame[] = [];
    net.onFrame((f) => got.push(f));
    const sent = Array.from({ length: 200 }, (_, i) => frame(i, [60, 300, 1500, 3000][i % 4]!));
    await Promise.all(sent.map((f) => net.send(f)));
    for (let i = 0; i < 200 && got.length < sent.length; i++) await new Promise((r) => setTimeout(r, 5));
    t.equal(got.length, sent.length, `every frame arrived (${got.length} did; dropped ${sim.dropped})`);
  });
}

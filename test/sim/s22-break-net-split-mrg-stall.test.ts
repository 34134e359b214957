// Breaker (s22), found while driving net rx under polling budgets, but NOT caused by them (it fails
// with pollBudget 0 too): on a split ring with EVENT_IDX and MRG_RXBUF, the reference device's
// receive queue stalls for good once a frame needs more buffers than are available at that moment.
// The model un-fetches the buffers it took (net-model.ts fillMerged → engine.ts putBack, which moves
// state.availIdx back), and process() then publishes avail_event = state.availIdx
// (sim/virtio/ring/split.ts publishNotifyWish) — an index the driver already passed, so the
// driver's later postings never cross it (needsEvent) and never notify; receive queues are not
// nudged by the watchdog (drains: false). The frames wait in the device's backlog for ever.
// Without EVENT_IDX, or on a packed ring (whose kick guards exactly this), all frames arrive.

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

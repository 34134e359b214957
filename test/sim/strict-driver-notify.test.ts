// The reference device with a driver that notifies only when the device's notification suppression
// asks for it, read strictly (postStrict, test/support/sim-driver.ts: split avail_event §2.7.10,
// packed device event suppression §2.8.10 / §2.8.14), on the queues where the device waits for a
// notification: a request queue it has emptied (blk, through several laps and a full ring), and a
// receive queue with data waiting and no buffers (console), including after it gave a buffer back
// because the data ran out. Every wish the device publishes there must be one the driver meets with
// its next posting, or the queue stalls. The receive put-back of virtio-net: net-rx-put-back-packed.

import t from 'tap';
import { createSimDevice, type SimConsoleDevice } from '../../lib/sim/index.js';
import { BlkReq, BlkStatus, Feature, bit } from '../../lib/spec/index.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import { SimDriver, blkRequest, layoutFeatures, newRing, postStrict, settle, type BlkRequest } from '../support/sim-driver.js';

const EVENT_IDX = bit(Feature.EVENT_IDX);

for (const layout of ['packed', 'split'] as const) {
  t.test(`${layout}, EVENT_IDX, blk, strict driver: every posting to a queue the device emptied notifies, over 7 laps and a full ring`, async (t) => {
    const sim = createSimDevice({ type: 'blk', capacitySectors: 64, completion: 'manual' });
    t.teardown(() => sim.fn.close());
    const d = new SimDriver(sim);
    d.start(layoutFeatures(layout, EVENT_IDX));
    d.setConfigVector(0);
    const ring = newRing(d, layout, 8);
    d.setupQueue(0, ring);
    d.driverOk();
    // A read is three descriptors, a flush two: the first batch fills all 8 slots, and the batches
    // end at every slot over the laps.
    const read = (): BlkRequest => blkRequest(d, BlkReq.IN, 1n, 512);
    const flush = (): BlkRequest => blkRequest(d, BlkReq.FLUSH, 0n);
    const batches = [[read, read, flush], [read], [flush, flush], [read, flush]];
    for (let round = 0; round < 12; round++) {
      const requests = batches[round % batches.length]!.map((make) => make());
      const { ids, notified } = postStrict(d, 0, ring, requests.map((r) => r.segs));
      t.ok(notified, `round ${round}: the posting notifies`);
      await settle();
      t.equal(sim.held, requests.length, `round ${round}: the device fetched all ${requests.length}`);
      sim.completeNow();
      await settle();
      t.same(ring.takeUsed().map((u) => u.id), ids, `round ${round}: all used`);
      t.same(requests.map((r) => r.status.bytes[0]), requests.map(() => BlkStatus.OK), `round ${round}: status OK`);
    }
    t.same(sim.violations, [], 'no driver rule broken');
  });

  t.test(`${layout}, EVENT_IDX, console, strict driver: receive buffers posted while bytes wait notify, also after a buffer was given back`, async (t) => {
    const sim: SimConsoleDevice = createSimDevice({ type: 'console', multiport: false, loopback: false });
    t.teardown(() => sim.fn.close());
    const d = new SimDriver(sim);
    d.start(layoutFeatures(layout, EVENT_IDX));
    d.setConfigVector(0);
    const rx = newRing(d, layout, 8);
    d.setupQueue(0, rx);
    d.driverOk();
    const port = sim.port(0)!;
    const posted = new Map<number, DmaRegion>();
    const post = (count: number): boolean => {
      const buffers = Array.from({ length: count }, () => d.alloc(16));
      const { ids, notified } = postStrict(d, 0, rx, buffers.map((b) => [{ addr: b.iova, len: b.size, write: true }]));
      ids.forEach((id, i) => posted.set(id, buffers[i]!));
      return notified;
    };
    const received = (): number[] => rx.takeUsed().flatMap((u) => [...posted.get(u.id)!.bytes.subarray(0, u.len)]);

    post(2);
    await settle();
    const sent = Array.from({ length: 100 }, (_, i) => (i * 13) & 0xff);
    port.send(Uint8Array.from(sent));
    await settle();
    const got = received();
    t.equal(got.length, 32, 'two buffers filled; 68 bytes wait');
    // Three buffers a time; the last posting has one more than the bytes need: the device takes it,
    // finds nothing for it and gives it back.
    for (let round = 0; got.length < sent.length && round < 10; round++) {
      t.ok(post(3), `${port.pending} bytes wait: the posting notifies`);
      await settle();
      got.push(...received());
    }
    t.same(got, sent, 'all 100 bytes, in order');
    port.send(Uint8Array.of(1, 2, 3));
    await settle();
    t.same(received(), [1, 2, 3], 'the buffer given back takes the next bytes');
    port.send(new Uint8Array(40).fill(7));
    await settle();
    t.equal(port.pending, 40, 'no buffer left: 40 bytes wait');
    t.ok(post(3), 'the posting notifies');
    await settle();
    t.same(received(), new Array(40).fill(7), 'and the 40 bytes arrive');
    t.same(sim.violations, [], 'no driver rule broken');
  });
}

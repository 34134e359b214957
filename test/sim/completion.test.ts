// Completion modes: requests fetched on a notify are held in flight until completeNow() or a timer.
import t from 'tap';
import { createSimDevice, type Completion } from '../../lib/sim/index.js';
import { BlkReq, BlkStatus } from '../../lib/spec/index.js';
import { SimDriver, SplitRing, blkRequest, settle } from '../support/sim-driver.js';

function bringUp(completion: Completion) {
  const sim = createSimDevice({ type: 'blk', completion });
  const d = new SimDriver(sim);
  d.start();
  const ring = new SplitRing(d, 16);
  d.setupQueue(0, ring);
  d.driverOk();
  return { sim, d, ring };
}

t.test('processing is asynchronous: nothing happens inside the notify write', async (t) => {
  const { sim, d, ring } = bringUp('immediate');
  ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
  d.notify(0);
  t.equal(ring.usedIdx, 0, 'not within the register write');
  t.equal(sim.stats.notifications[0], 1);
  await settle();
  t.equal(ring.usedIdx, 1);
});

t.test('manual completion holds fetched requests until completeNow()', async (t) => {
  const { sim, d, ring } = bringUp('manual');
  const reqs = [0, 1, 2].map((i) => blkRequest(d, BlkReq.OUT, BigInt(i), new Uint8Array(512).fill(i + 1)));
  for (const r of reqs) ring.add(r.segs);
  d.notify(0);
  await settle();
  t.equal(sim.held, 3, 'fetched and held');
  t.equal(ring.usedIdx, 0);
  t.ok(reqs.every((r) => r.status.bytes[0] === 0xff), 'not served yet');
  t.equal(sim.disk[0], 0, 'the disk is untouched until completion');
  t.equal(sim.completeNow(), 3);
  t.equal(sim.held, 0);
  t.equal(ring.usedIdx, 3, 'used elements are written by completeNow() itself');
  t.same(ring.takeUsed().map((u) => u.id), [0, 3, 6], 'in the order fetched');
  t.ok(reqs.every((r) => r.status.bytes[0] === BlkStatus.OK));
  t.same(d.vectors, [], 'the interrupt is delivered later');
  await settle();
  t.same(d.vectors, [0], 'one interrupt for the batch');
  t.equal(sim.completeNow(), 0);
});

t.test('latency completion completes after the delay', async (t) => {
  const { sim, d, ring } = bringUp({ latencyMs: 30 });
  ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
  d.notify(0);
  await settle();
  t.equal(sim.held, 1);
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.equal(sim.held, 0);
  t.equal(ring.usedIdx, 1);
  t.throws(() => createSimDevice({ type: 'blk', completion: { latencyMs: -1 } }), { code: 'E_INVALID_ARGUMENT' });
});

t.test('a reset while a latency timer runs forgets the request', async (t) => {
  const { sim, d, ring } = bringUp({ latencyMs: 20 });
  ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
  d.notify(0);
  await settle();
  d.reset();
  await new Promise((resolve) => setTimeout(resolve, 40));
  t.equal(ring.usedIdx, 0);
  t.equal(sim.stats.completed[0], 0);
});

t.test('the factory validates its options', async (t) => {
  t.throws(() => createSimDevice({ type: 'blk', queueMaxSize: 100 }), { code: 'E_INVALID_ARGUMENT' });
  t.throws(() => createSimDevice({ type: 'blk', capacitySectors: 0 }), { code: 'E_INVALID_ARGUMENT' });
  t.throws(() => createSimDevice({ type: 'blk', msixVectors: 0 }), { code: 'E_INVALID_ARGUMENT' });
  t.throws(() => createSimDevice({ type: 'blk' }).injectFault({ kind: 'nope' as 'bad-used-id' }), { code: 'E_INVALID_ARGUMENT' });
  t.throws(() => createSimDevice({ type: 'blk', queues: 2 }).injectFault({ kind: 'completion-silence', queu: 1 } as never),
    { code: 'E_INVALID_ARGUMENT', message: /unknown option "queu"/, hint: /did you mean "queue"/ }, 'a misspelt field is refused, not read as "every queue"');
});

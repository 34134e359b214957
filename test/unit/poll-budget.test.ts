// A polling turn's budget (OpenOptions.pollBudget, lib/virtio/busy-poll.ts): a turn takes at most
// the budget of used elements and yields, so what the completions resubmit reaches the ring (and
// the device can take it) while the rest of the round waits for the next turn; 'half' takes half
// of what is in flight, at least POLL_BUDGET_FLOOR; 0 takes all; every completion is still taken,
// once. The device is the hand device: it finishes chains when told, as a device on another thread.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { POLL_BUDGET_FLOOR, turnBudget, type PollBudget } from '../../lib/virtio/busy-poll.js';
import { createVirtqueue, type Layout } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type RequestToken } from '../../lib/virtio/request-queue.js';
import { PackedHandDevice, SplitHandDevice, seg, type HandDevice } from '../support/hand-device.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(layout: Layout, size: number) {
  const dma = new HeapDmaAllocator();
  const vq = createVirtqueue<RequestToken<number>>(layout, { index: 0, size, dma, features: { indirect: false, eventIdx: false }, notify: () => undefined });
  const dev: HandDevice = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  return { vq, dev, rq: new RequestQueue<number>(vq) };
}

t.test('turnBudget: half of what is in flight, at least the floor; a fixed cap; 0 is no cap', (t) => {
  t.equal(turnBudget('half', 64), 32);
  t.equal(turnBudget('half', 33), 17, 'rounds up');
  t.equal(turnBudget('half', 1), POLL_BUDGET_FLOOR, 'never below the floor');
  t.equal(turnBudget('half', 0), POLL_BUDGET_FLOOR);
  t.equal(turnBudget(5, 64), 5);
  t.equal(turnBudget(0, 64), Infinity);
  t.end();
});

for (const layout of ['split', 'packed'] as const) {
  for (const [budget, firstTurn] of [['half', 20], [0, 40], [7, 7]] as [PollBudget, number][]) {
    t.test(`${layout}, budget ${budget}: a turn takes ${firstTurn} of 40 used elements; a resubmission from a completion reaches the device before the rest are taken`, async (t) => {
      const { dev, rq } = setup(layout, 128); // two descriptors per chain: room for 64
      const settled: number[] = [];
      const resubmitted: number[] = [];
      const errors: Error[] = [];
      const onDone = (error: Error | null, _len: number, token: number): void => {
        if (error) errors.push(error);
        settled.push(token);
        // The first completion of the round resubmits, as a reader of a closed loop does.
        if (token === 0) rq.submitCb([seg(0x9000, 16)], [seg(0xa000, 4)], 100, (e, _l, tok) => { if (!e) resubmitted.push(tok); }, false);
      };
      for (let i = 0; i < 40; i++) rq.submitCb([seg(0x1000 + i * 0x100, 16)], [seg(0x20000 + i * 0x100, 4)], i, onDone, false);
      await Promise.resolve();
      const round = dev.takeAll();
      t.equal(round.length, 40);
      for (const c of round) dev.complete(c, 4);
      rq.startPolling(0, budget);
      await nextTurn();
      t.equal(settled.length, firstTurn, `the first turn took ${firstTurn}`);
      t.same(settled, Array.from({ length: firstTurn }, (_, i) => i), 'in the order the device used them');
      const early = dev.takeAll();
      t.equal(early.length, 1, 'the resubmission is in the ring after the first turn');
      for (let turns = 0; settled.length < 40 && turns < 10; turns++) await nextTurn();
      t.equal(settled.length, 40, 'every completion was taken');
      t.equal(new Set(settled).size, 40, 'each once');
      t.same(errors, [], 'none with an error');
      dev.complete(early[0]!, 4);
      for (let turns = 0; resubmitted.length === 0 && turns < 10; turns++) await nextTurn();
      t.same(resubmitted, [100], 'the resubmission completed too');
      t.equal(rq.pending, 0);
      rq.stopPolling();
    });
  }
}

t.test('processUsed(max) takes at most max, in order, and the rest on the next call', async (t) => {
  const { dev, rq } = setup('split', 16);
  const settled: number[] = [];
  for (let i = 0; i < 10; i++) rq.submitCb([seg(0x1000 + i * 0x100, 16)], [], i, (_e, _l, tok) => settled.push(tok));
  for (const c of dev.takeAll()) dev.complete(c, 0);
  t.equal(rq.processUsed(3), 3);
  t.same(settled, [0, 1, 2]);
  t.equal(rq.pending, 7, 'the rest stay in flight, not lost');
  t.equal(rq.processUsed(), 7, 'no cap: all the rest');
  t.same(settled, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.equal(rq.processUsed(5), 0, 'nothing left');
});

for (const layout of ['split', 'packed'] as const) {
  for (const [budget, now] of [['half', 20], [0, 40], [7, 7]] as [PollBudget, number][]) {
    t.test(`${layout}, budget ${budget}: an interrupt takes ${now} of 40 used elements now and the rest on following turns, each once`, async (t) => {
      const { dev, rq } = setup(layout, 128);
      rq.setHybridPoll(0, 0, budget);
      const settled: number[] = [];
      for (let i = 0; i < 40; i++) rq.submitCb([seg(0x1000 + i * 0x100, 16)], [seg(0x20000 + i * 0x100, 4)], i, (_e, _l, tok) => settled.push(tok), false);
      await Promise.resolve();
      for (const c of dev.takeAll()) dev.complete(c, 4);
      rq.interrupted();
      t.equal(settled.length, now, `${now} taken in the interrupt's own turn`);
      rq.interrupted(); // a second interrupt before the rest's turn: nothing taken twice
      t.equal(settled.length, now, 'a turn for the rest is already queued: the second interrupt waits for it');
      for (let turns = 0; settled.length < 40 && turns < 10; turns++) await nextTurn();
      t.same(settled, Array.from({ length: 40 }, (_, i) => i), 'all 40, in order, each once');
      t.equal(rq.pending, 0);
    });
  }
}

// Polling delivery's spin (lib/virtio/busy-poll.ts, OpenOptions.pollSpinUs): a poll turn that finds
// nothing spins on the used index and takes a completion that lands during the spin in the same
// turn, without another turn of the event loop; the spin ends at its bound when nothing comes; 0
// never spins. The device here is the hand device, made to finish a chain from inside the spin
// (as a device on another thread or another CPU would).

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { VirtqueueError } from '../../lib/errors.js';
import { spinForUsed } from '../../lib/virtio/busy-poll.js';
import { createVirtqueue, type Layout, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type RequestToken } from '../../lib/virtio/request-queue.js';
import { PackedHandDevice, SplitHandDevice, type HandDevice } from '../support/hand-device.js';

const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });

function setup(layout: Layout) {
  const dma = new HeapDmaAllocator();
  const vq = createVirtqueue<RequestToken<string>>(layout, { index: 0, size: 8, dma, features: { indirect: false, eventIdx: false }, notify: () => undefined });
  const dev: HandDevice = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  // The device finishes everything it holds at the `at`-th look at the used index after arm().
  let looks = 0;
  let at = Infinity;
  const usedPending = vq.usedPending.bind(vq);
  vq.usedPending = () => {
    if (++looks === at) for (const c of dev.takeAll()) dev.complete(c, 4);
    return usedPending();
  };
  return { vq, rq: new RequestQueue<string>(vq), looks: () => looks, arm: (n: number) => { looks = 0; at = n; } };
}

/** Whether `p` has settled by the time an immediate queued now runs (i.e. within the poll turn already queued). */
function settledWithinTurn(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(() => { settled = true; }, () => { settled = true; });
  return new Promise((resolve) => setImmediate(() => resolve(settled)));
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: a completion that lands during the spin is taken in the same turn`, async (t) => {
    const { rq, arm } = setup(layout);
    arm(10);
    rq.startPolling(100_000);
    const p = rq.submit([seg(0x1000, 8)], [seg(0x2000, 4)], 'r');
    t.ok(await settledWithinTurn(p), 'settled before an immediate queued after the submit ran');
    t.equal((await p).len, 4);
    rq.stopPolling();
  });

  t.test(`${layout}: without the spin the same completion waits for a later turn`, async (t) => {
    const { rq, arm, looks } = setup(layout);
    arm(1);
    rq.startPolling(0);
    const p = rq.submit([seg(0x1000, 8)], [seg(0x2000, 4)], 'r');
    t.notOk(await settledWithinTurn(p), 'not settled within the first turn');
    t.equal(looks(), 0, 'spinUs 0 never looks at the used index between turns');
    rq.stopPolling();
    rq.fail(new VirtqueueError('E_QUEUE_BROKEN', 0, 'test over'));
    await p.catch(() => undefined);
  });
}

t.test('spinForUsed ends at its bound when nothing comes, and at once when something is there', (t) => {
  let calls = 0;
  const never = { usedPending: () => { calls++; return false; } };
  const t0 = performance.now();
  t.equal(spinForUsed(never, 2000), false, 'nothing came');
  t.ok(performance.now() - t0 >= 2, 'it spun at least its 2000 µs');
  t.ok(calls > 0);
  calls = 0;
  t.equal(spinForUsed(never, 0), false, '0: no spin');
  t.equal(calls, 0, '0 never looks');
  t.equal(spinForUsed({ usedPending: () => true }, 1_000_000), true, 'returns at once when the ring has something');
  t.end();
});

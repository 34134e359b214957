// Found by a breaker (fixed: lengths must be whole non-negative numbers; the queue is checked again after the caller's getters ran).
// Virtqueue.add() reads a chain once (checkChain → chainAddr/chainLen), but it trusts
// the arrays' `length` (a Proxy array may answer anything) and it re-checks nothing after the
// segments' getters ran (a getter may close or fail the queue before the chain is written).
import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { VirtqueueError } from '../../lib/errors.js';
import { PackedVirtqueue, SplitVirtqueue, type Segment } from '../../lib/virtio/queue/index.js';
import { PackedHandDevice, SplitHandDevice } from '../support/hand-device.js';
import { codeOf } from '../support/codes.js';

const layouts = [
  ['split', SplitVirtqueue, SplitHandDevice],
  ['packed', PackedVirtqueue, PackedHandDevice],
] as const;

function setup(layout: (typeof layouts)[number], size = 8) {
  const dma = new HeapDmaAllocator();
  const vq = new layout[1]<number>({ index: 0, size, dma, features: { indirect: false, eventIdx: false }, notify: () => {} });
  return { vq, dev: new layout[2](dma, vq as never) };
}

/** An array whose `length` lies (a Proxy over a real array: Array.isArray says true). */
function lying(items: Segment[], length: unknown): Segment[] {
  return new Proxy(items, { get: (target, k, r) => (k === 'length' ? length : Reflect.get(target, k, r)) });
}

for (const layout of layouts) {
  for (const length of [1.5, -1, '2']) {
    void t.test(`${layout[0]}: a segment array whose length is ${JSON.stringify(length)} is E_BAD_CHAIN, and the queue is left as it was`, async (t) => {
      const { vq, dev } = setup(layout, 256);
      const readable = lying([{ addr: 0x1000n, len: 16 }, { addr: 0x2000n, len: 32 }], length);
      const writable: Segment[] = length === -1 ? [{ addr: 0x3000n, len: 8 }, { addr: 0x4000n, len: 8 }, { addr: 0x5000n, len: 8 }] : [];
      t.equal(codeOf(() => vq.add(readable, writable, 1)), 'E_BAD_CHAIN', 'a length that is not a count of segments is not a chain');
      t.equal(vq.inFlight, 0, 'nothing was made available');
      t.equal(vq.numFree, 256, 'the free count is whole and unchanged');
      t.same(dev.takeAll(), [], 'the device sees no chain');
    });
  }

  for (const op of ['close', 'fail'] as const) {
    void t.test(`${layout[0]}: a segment getter that ${op}s the queue makes that add() refused (nothing written to a ${op === 'close' ? 'freed' : 'broken'} ring)`, async (t) => {
      const { vq } = setup(layout);
      const hostile = {
        get addr() {
          if (op === 'close') vq.close();
          else vq.fail(new VirtqueueError('E_DEVICE_NEEDS_RESET', 0, 'failed from a getter'));
          return 0x1000n;
        },
        len: 16,
      };
      const code = codeOf(() => vq.add([hostile], [], 1));
      t.equal(code, op === 'close' ? 'E_CLOSED' : 'E_QUEUE_BROKEN', 'the add is refused with the queue\'s state');
      t.equal(vq.inFlight, 0, 'no chain is tracked on a closed or broken queue');
    });
  }
}

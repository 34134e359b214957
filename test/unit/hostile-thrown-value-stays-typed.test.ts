// Found by a breaker (fixed: isInstance() classifies a thrown value without letting a trap throw).
// the last change promises "a throwing getter is E_INVALID_ARGUMENT / E_BAD_CHAIN" for a
// batch (readRequests) and a chain's segments (QueueCore.checkChain). Both classify what was thrown
// with `instanceof` (e instanceof VirtqueueError / UsageError) — which itself throws when the
// thrown value is a Proxy whose getPrototypeOf trap throws. The trap's Error then escapes
// untyped: vq.add() throws a plain Error, submitMany() throws a plain Error synchronously, submit()
// rejects with one. Expected: E_BAD_CHAIN / E_INVALID_ARGUMENT whatever the getter throws (the
// classification must not run code of the caller's, or must be guarded like thrownMessage()).

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { UvirtioError } from '../../lib/errors.js';
import { SplitVirtqueue, PackedVirtqueue, createVirtqueue, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type RequestSpec } from '../../lib/virtio/request-queue.js';

/** A thrown value on which `instanceof` throws. */
const evil = (): unknown => new Proxy({}, { getPrototypeOf() { throw new Error('getPrototypeOf trap'); } });
const codeOfThrown = (e: unknown): string => {
  try {
    return e instanceof UvirtioError ? e.code : 'untyped';
  } catch {
    return 'untyped (a hostile value)';
  }
};
const throwingSegment = (): Segment => ({ get addr(): bigint { throw evil(); }, len: 4 });

for (const Q of [SplitVirtqueue, PackedVirtqueue]) {
  t.test(`${Q.name}.add(): a segment getter that throws a value instanceof cannot inspect is E_BAD_CHAIN`, async (t) => {
    const vq = new Q<number>({ index: 0, size: 8, dma: new HeapDmaAllocator(), features: { indirect: false, eventIdx: false }, notify: () => undefined });
    let code = 'no error';
    try {
      vq.add([throwingSegment()], [], 1);
    } catch (e) {
      code = codeOfThrown(e);
    }
    t.equal(code, 'E_BAD_CHAIN');
    t.equal(vq.inFlight, 0);
  });
}

t.test('submitMany(): an entry getter that throws a value instanceof cannot inspect is E_INVALID_ARGUMENT, adding none', async (t) => {
  const vq = createVirtqueue('split', { index: 3, size: 8, dma: new HeapDmaAllocator(), features: { indirect: false, eventIdx: false }, notify: () => undefined });
  const rq = new RequestQueue<number>(vq as never);
  const entry = Object.defineProperty({ writable: [], token: 1 }, 'readable', { get() { throw evil(); } }) as unknown as RequestSpec<number>;
  let code = 'no error';
  try {
    rq.submitMany([entry]);
  } catch (e) {
    code = codeOfThrown(e);
  }
  t.equal(code, 'E_INVALID_ARGUMENT');
  t.equal(vq.inFlight, 0);
});

t.test('submit(): a segment getter that throws a value instanceof cannot inspect rejects E_BAD_CHAIN', async (t) => {
  const vq = createVirtqueue('split', { index: 3, size: 8, dma: new HeapDmaAllocator(), features: { indirect: false, eventIdx: false }, notify: () => undefined });
  const rq = new RequestQueue<number>(vq as never);
  const code = await rq.submit([throwingSegment()], [], 1).then(() => 'no error', codeOfThrown);
  t.equal(code, 'E_BAD_CHAIN');
});

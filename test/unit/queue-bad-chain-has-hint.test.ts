// Found by a breaker (fixed: every E_BAD_CHAIN carries a hint).
// errors.ts promises every UvirtioError "a hint a person can act on", and the new
// refusals of Virtqueue.add() — a segment getter that throws ("the chain could not be read"), an
// add() re-entered from a segment getter — are E_BAD_CHAIN built by badChain(), which passes no
// hint (and E_BAD_CHAIN has no generic one): hint is undefined for every E_BAD_CHAIN, old and new.
// Expected: a hint (e.g. "segments must be plain { addr: bigint, len } objects; do not add() from
// a getter").

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { UvirtioError } from '../../lib/errors.js';
import { PackedVirtqueue, SplitVirtqueue, type Segment } from '../../lib/virtio/queue/index.js';

for (const Q of [SplitVirtqueue, PackedVirtqueue]) {
  t.test(`${Q.name}: every E_BAD_CHAIN carries a hint`, async (t) => {
    const vq = new Q<number>({ index: 0, size: 8, dma: new HeapDmaAllocator(), features: { indirect: true, eventIdx: false }, notify: () => undefined });
    let inner: unknown;
    const cases: [string, () => void][] = [
      ['a throwing getter', () => vq.add([Object.defineProperty({ len: 4 }, 'addr', { get() { throw new Error('boom'); } }) as Segment], [], 1)],
      ['an add() from inside a getter', () => {
        vq.add([{ get addr() { try { vq.add([{ addr: 0x2000n, len: 4 }], [], 3); } catch (e) { inner = e; } return 0x1000n; }, len: 4 }], [], 2);
        if (inner) throw inner;
      }],
      ['a zero-length segment', () => vq.add([{ addr: 0x1000n, len: 0 }], [], 4)],
      ['a chain longer than the queue', () => vq.add(Array.from({ length: 9 }, () => ({ addr: 0x1000n, len: 1 })), [], 5)],
    ];
    for (const [what, f] of cases) {
      try {
        f();
        t.fail(`${what}: accepted`);
      } catch (e) {
        t.ok(e instanceof UvirtioError && e.code === 'E_BAD_CHAIN', `${what}: E_BAD_CHAIN`);
        t.ok(e instanceof UvirtioError && typeof e.hint === 'string' && e.hint.length > 0, `${what}: with a hint (got ${String((e as UvirtioError).hint)})`);
      }
    }
  });
}

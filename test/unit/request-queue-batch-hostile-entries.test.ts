// Found by a breaker (fixed: the batch is read once — readRequests() — and the chain once —
// checkChain() copies each segment — so what was checked is what is submitted, and a throwing
// getter is E_INVALID_ARGUMENT / E_BAD_CHAIN). The flipping Proxy is now read once: its entry 1 is
// the object it answered, and the whole batch goes in as checked.
//
// The report: submitMany() / submitManyCb() promise "E_INVALID_ARGUMENT (UsageError), adding none" for
// bad arguments, and the last change made the checks safe against revoked Proxies. But the check
// (checkRequests) and the submission read the batch separately: an entry whose `readable` getter
// throws, or a Proxy array that answers an object to the check and null to the submission, throws
// the caller's Error or a TypeError from the middle of the batch — after the entries before it were
// added to the ring (available to the device, never kicked), and for submitMany with their promises
// lost (the array of promises is never returned). submitMany does not throw (each enqueue runs in
// a Promise executor) but rejects that entry with the getter's Error or a TypeError, no code.
// Expected: a typed error (E_INVALID_ARGUMENT at the call, adding nothing; or E_BAD_CHAIN for that
// request, as submitCb refuses a chain that is not one).

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { createVirtqueue, type Layout, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type CompletionCallback, type RequestSpec, type RequestToken } from '../../lib/virtio/request-queue.js';

function setup(layout: Layout, size: number) {
  const dma = new HeapDmaAllocator();
  const vq = createVirtqueue<RequestToken<string>>(layout, { index: 3, size, dma, features: { indirect: false, eventIdx: false }, notify: () => undefined });
  return { rq: new RequestQueue<string>(vq), vq };
}

const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });
const spec = (n: number): RequestSpec<string> => ({ readable: [seg(0x1000 * n, 8)], writable: [seg(0x100000 + 0x1000 * n, 64)], token: `r${n}` });

/** An entry whose `readable` getter throws. */
const throwing = (): RequestSpec<string> => Object.defineProperty({ writable: [], token: 'bad' }, 'readable', { get() { throw new Error('getter boom'); } }) as unknown as RequestSpec<string>;

/** An array Proxy whose entry 1 is an object when read the first time and null after. */
function flipping(): RequestSpec<string>[] {
  const target = [spec(1), spec(2), spec(3)];
  let reads = 0;
  return new Proxy(target, {
    get(o, k, r) {
      if (k === '1' && reads++ > 0) return null;
      return Reflect.get(o, k, r) as unknown;
    },
  });
}

const errorOf = (f: () => unknown): { name: string; code?: string; message: string } | undefined => {
  try {
    f();
  } catch (e) {
    const err = e as { name: string; code?: string; message: string };
    return { name: err.name, code: err.code, message: err.message };
  }
  return undefined;
};

for (const layout of ['split', 'packed'] as const) {
  for (const [what, batch] of [['an entry whose readable getter throws', () => [spec(1), throwing(), spec(3)]], ['a Proxy array whose entry changes after the check', flipping]] as const) {
    t.test(`${layout}: submitMany with ${what}: a typed refusal`, async (t) => {
      const { rq, vq } = setup(layout, 8);
      let promises: Promise<unknown>[] | undefined;
      const err = errorOf(() => (promises = rq.submitMany(batch())));
      if (err) {
        t.match(err.code, /^E_INVALID_ARGUMENT$|^E_BAD_CHAIN$/, `thrown: a typed error (got ${err.name} ${err.code ?? ''}: ${err.message})`);
        t.equal(rq.pending + vq.inFlight, 0, 'a refused batch adds nothing (no request made available whose promise the caller never got)');
      } else if (what.startsWith('a Proxy')) {
        t.equal(vq.inFlight, 3, 'each entry was read once: the batch went in as it was checked, all three');
      } else {
        // Not thrown: then entry 1 must be refused as a chain that is not one, E_BAD_CHAIN (as submitCb does).
        const second = await Promise.race([promises![1]!.then(() => 'resolved', (e: { name: string; code?: string; message: string }) => `${e.name} ${e.code ?? '(no code)'}: ${e.message}`), new Promise((r) => setTimeout(() => r('pending'), 50))]);
        t.match(second, /E_BAD_CHAIN/, `entry 1 is refused E_BAD_CHAIN (got ${String(second)})`);
      }
    });
    t.test(`${layout}: submitManyCb with ${what}: a typed error, nothing added`, async (t) => {
      const { rq, vq } = setup(layout, 8);
      const calls: string[] = [];
      const cb: CompletionCallback<string> = (e, _len, token) => calls.push(`${token}:${e ? (e as { code?: string }).code : 'ok'}`);
      const err = errorOf(() => rq.submitManyCb(batch(), cb));
      if (err) t.match(err.code, /^E_INVALID_ARGUMENT$|^E_BAD_CHAIN$/, `thrown: a typed error (got ${err.name} ${err.code ?? ''}: ${err.message})`);
      if (err) t.equal(rq.pending + vq.inFlight, 0, 'a refused batch adds nothing');
      else t.equal(vq.inFlight, 3, 'each entry was read once: the batch went in as it was checked');
    });
  }
}

// The same kind one level down: the segments of a chain. Virtqueue.add() checked each segment and
// then read it again to write the descriptor, so a segment whose getter lies wrote an address it
// never checked (a TypeError mid-add, or a bad descriptor), and a throwing getter surfaced as the
// caller's own Error, with no code.
for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: a segment read for the check is the segment written: a lying getter cannot change it, a throwing one is E_BAD_CHAIN`, async (t) => {
    const { rq, vq } = setup(layout, 8);
    let reads = 0;
    const lying = { len: 8, get addr(): bigint { return reads++ === 0 ? 0x5000n : ('junk' as unknown as bigint); } };
    const calls: string[] = [];
    const cb: CompletionCallback<string> = (e, _len, token) => calls.push(`${token}:${e ? (e as { code?: string }).code : 'ok'}`);
    rq.submitCb([lying], [seg(0x9000, 16)], 'lying', cb);
    t.equal(reads, 1, 'the getter was read once');
    t.equal(vq.inFlight, 1, 'the chain went in with the address that was checked');
    const throwingSeg = { len: 8, get addr(): bigint { throw new Error('addr boom'); } };
    rq.submitCb([throwingSeg], [], 'throwing', cb);
    await new Promise((r) => setTimeout(r, 5));
    t.same(calls, ['throwing:E_BAD_CHAIN'], 'a segment that throws when read refuses that chain with E_BAD_CHAIN');
    t.equal(vq.inFlight, 1, 'and adds nothing');
  });
}

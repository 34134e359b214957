// Breaker 27 (FAILS at 335d497): readInto decides "is a Uint8Array" by `instanceof`, so a real
// Uint8Array with another prototype (null, another realm) is refused, while an Int8Array /
// Uint16Array / Float64Array given Uint8Array.prototype is accepted (README: other typed arrays are refused).
import t from 'tap';
import vm from 'node:vm';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { codeOfAsync } from '../support/codes.js';

async function bringUp(t: { teardown(fn: () => unknown): void }, opts: { latencyMs?: number; depth?: number; ringState?: boolean; requestTimeoutMs?: number } = {}) {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, completion: opts.latencyMs ? { latencyMs: opts.latencyMs } : 'immediate', state: { ringState: opts.ringState ?? false } });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { maxTransfer: 16 * 1024, depth: opts.depth ?? 8, layout: 'split', ...(opts.requestTimeoutMs ? { requestTimeoutMs: opts.requestTimeoutMs } : {}) });
  t.teardown(() => blk.close());
  return { sim, blk };
}
const pattern = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 31 + seed * 7) & 0xff);

t.test('a Uint8Array whose prototype was set to null is still a Uint8Array: accepted', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, pattern(4096, 1));
  const target = new Uint8Array(4096);
  const memory = new Uint8Array(target.buffer); // its memory, seen before the prototype goes
  Object.setPrototypeOf(target, null);
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target)), 'no error', 'a null-prototype Uint8Array is a Uint8Array');
  t.same(memory, pattern(4096, 1), 'and the bytes are in its memory');
});

t.test('a Uint8Array from another realm (vm context) is a Uint8Array: accepted', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, pattern(4096, 2));
  const target = vm.runInNewContext('new Uint8Array(4096)') as Uint8Array;
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target)), 'no error', 'a Uint8Array of another realm');
});

t.test('another kind of typed array dressed as a Uint8Array (setPrototypeOf) is refused', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, pattern(4096, 3));
  for (const Ctor of [Int8Array, Uint8ClampedArray, Uint16Array, Float64Array] as const) {
    const n = 4096 * (Ctor as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT / 1;
    const other = new (Ctor as unknown as new (n: number) => object)(4096);
    void n;
    Object.setPrototypeOf(other, Uint8Array.prototype);
    t.equal(await codeOfAsync(() => blk.readInto(0, 8, other as Uint8Array)), 'E_INVALID_ARGUMENT', `a ${Ctor.name} with Uint8Array.prototype is refused`);
  }
});

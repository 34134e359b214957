// Breaker 27 (FAILS at 335d497): readInto decides "is a Uint8Array" by `instanceof`, so a real
// Uint8Array with another prototype (null, another realm) is refused, while an Int8Array /
// Uint16Array / Float64Array given Uint8Array.prototype is accepted (README: other typed arrays are refused).
import t from 'tap';
import vm from 'node:vm';
import { codeOfAsync } from '../support/codes.js';
import { openBlkSim, blkPattern, type BlkSimOptions } from '../support/blk-sim.js';

const bringUp = (t: { teardown(fn: () => unknown): void }, opts: BlkSimOptions = {}) => openBlkSim(t, { layout: 'split', ...opts });

t.test('a Uint8Array whose prototype was set to null is still a Uint8Array: accepted', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, blkPattern(4096, 1));
  const target = new Uint8Array(4096);
  const memory = new Uint8Array(target.buffer); // its memory, seen before the prototype goes
  Object.setPrototypeOf(target, null);
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target)), 'no error', 'a null-prototype Uint8Array is a Uint8Array');
  t.same(memory, blkPattern(4096, 1), 'and the bytes are in its memory');
});

t.test('a Uint8Array from another realm (vm context) is a Uint8Array: accepted', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, blkPattern(4096, 2));
  const target = vm.runInNewContext('new Uint8Array(4096)') as Uint8Array;
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target)), 'no error', 'a Uint8Array of another realm');
});

t.test('another kind of typed array dressed as a Uint8Array (setPrototypeOf) is refused', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, blkPattern(4096, 3));
  for (const Ctor of [Int8Array, Uint8ClampedArray, Uint16Array, Float64Array] as const) {
    const n = 4096 * (Ctor as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT / 1;
    const other = new (Ctor as unknown as new (n: number) => object)(4096);
    void n;
    Object.setPrototypeOf(other, Uint8Array.prototype);
    t.equal(await codeOfAsync(() => blk.readInto(0, 8, other as Uint8Array)), 'E_INVALID_ARGUMENT', `a ${Ctor.name} with Uint8Array.prototype is refused`);
  }
});

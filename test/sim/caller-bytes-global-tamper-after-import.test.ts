// Breaker 28 (FAILS at 8f9c7da): plainBytes (lib/util/plain-bytes.ts) captures the TypedArray
// getters when the SDK is imported, but console emergencyWrite then walks the plain view with
// `for (const c of b)`, i.e. %TypedArray%.prototype[Symbol.iterator] as it is at call time. A
// program (or a polyfill) that replaces that iterator after importing the SDK decides what
// emergencyWrite sends and for how long: an endless one hangs the process synchronously (the case
// the fix meant to rule out for an own iterator). Here a finite one shows it: the device gets the
// iterator's bytes, not the array's memory. What should happen: the bytes of the array's memory,
// by index over the captured length (as plainBytes promises), whatever the prototypes say now.
import t from 'tap';
import { codeOf } from '../support/codes.js';
import { bringUp } from '../support/console.js';

t.test('console: emergencyWrite sends the memory even with %TypedArray%.prototype[Symbol.iterator] replaced after import', async (t) => {
  const { sim, con } = await bringUp(t, { multiport: false });
  const typedProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
  const original = Object.getOwnPropertyDescriptor(typedProto, Symbol.iterator)!;
  Object.defineProperty(typedProto, Symbol.iterator, {
    configurable: true, writable: true,
    value: function* () { for (let i = 0; i < 5; i++) yield 0x41; }, // an endless loop here hangs emergencyWrite for ever
  });
  let code: string;
  try {
    code = codeOf(() => con.emergencyWrite(new Uint8Array([0x68, 0x69])));
  } finally {
    Object.defineProperty(typedProto, Symbol.iterator, original);
  }
  t.equal(code, 'no error');
  t.equal(Buffer.from(sim.emergency).toString(), 'hi', 'the two bytes of its memory went, not what the replaced iterator yields');
});

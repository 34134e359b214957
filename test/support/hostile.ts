// Arguments of the wrong kind, for the tests that every public call refuses them with a typed
// error (test/sim/api-hostile-arguments*.test.ts): values a careless or hostile caller passes
// where a number, a bigint IOVA, a byte array, an options object or a list is expected.

import type { Test } from 'tap';
import { UvirtioError } from '../../lib/errors.js';

/** What the Proxy below throws from every property read: the caller's own error. */
export const trapError = new Error('a getter of the caller threw');

/** Each hostile value with its name (the names are what `okFor` lists). */
export const HOSTILE: readonly [string, unknown][] = [
  ['a prototype-less object', Object.create(null)],
  ['an object whose toString throws', { toString(): string { throw new Error('toString'); } }],
  ['an object whose Symbol.toPrimitive throws', { [Symbol.toPrimitive](): never { throw new Error('toPrimitive'); } }],
  ['a symbol', Symbol('s')],
  ['a bigint', 1n],
  ['a numeric string', '5'],
  ['NaN', NaN],
  ['null', null],
  ['undefined', undefined],
  ['an array', []],
  ['a Proxy that throws on every read', new Proxy({}, { get(): never { throw trapError; } })],
];

/** The hostile values that are objects (or undefined): fine where an options object is optional. */
export const OBJECT_LIKE = ['undefined', 'an array', 'a prototype-less object', 'an object whose toString throws', 'an object whose Symbol.toPrimitive throws'];

/** How a call ended within 2 s: 'ok', a UvirtioError code, 'caller' (the trap's own error), 'HANG', or what else it threw. */
export async function outcome(call: () => unknown): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const hang = new Promise<string>((r) => (timer = setTimeout(() => r('HANG'), 2000)));
    return await Promise.race([Promise.resolve(call()).then(() => 'ok'), hang]);
  } catch (e) {
    if (e === trapError) return 'caller';
    return e instanceof UvirtioError ? e.code : `foreign ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;
  } finally {
    clearTimeout(timer);
  }
}

/** Calls `call` with each hostile value; each must end in a UvirtioError code (or 'ok' for the names in `okFor`). */
export async function refusesAll(t: Test, label: string, call: (v: never) => unknown, okFor: readonly string[] = []): Promise<void> {
  const wrong: string[] = [];
  for (const [name, v] of HOSTILE) {
    const got = await outcome(() => call(v as never));
    const fine = /^E_[A-Z_]+$/.test(got) || got === 'caller' || (got === 'ok' && okFor.includes(name));
    if (!fine) wrong.push(`${name}: ${got}`);
  }
  t.same(wrong, [], `${label}: every hostile value is refused with a typed error`);
}

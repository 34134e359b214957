// lib/sim/virtio/in-flight.ts: the reference device's list of chains in flight, a ring of slots
// with a head index (taking the oldest moves nothing). It must behave exactly as the Array it
// replaced — push at the end, take any one off (the first occurrence), oldest first — through
// growth, wrap-around and removals from the middle. fast-check runs it beside an Array.
import t from 'tap';
import fc from 'fast-check';
import { InFlight } from '../../lib/sim/virtio/in-flight.js';

type Op = { push: number } | { removeFront: true } | { remove: number };

t.test('InFlight agrees with an Array under any sequence of push and remove', async (t) => {
  const items = Array.from({ length: 40 }, (_, id) => ({ id }));
  const op = fc.oneof(
    fc.record({ push: fc.integer({ min: 0, max: 39 }) }),
    fc.record({ removeFront: fc.constant(true as const) }),
    fc.record({ remove: fc.integer({ min: 0, max: 39 }) }),
  ) as fc.Arbitrary<Op>;
  let runs = 0;
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    runs++;
    const list = new InFlight<{ id: number }>();
    const model: { id: number }[] = [];
    for (const o of ops) {
      if ('push' in o) {
        list.push(items[o.push]!);
        model.push(items[o.push]!);
      } else {
        const item = 'remove' in o ? items[o.remove]! : model[0];
        const at = item === undefined ? -1 : model.indexOf(item);
        if (at >= 0) model.splice(at, 1);
        if (item !== undefined && list.remove(item) !== at >= 0) return false;
      }
      if (list.length !== model.length) return false;
    }
    const out = list.toArray();
    return out.length === model.length && out.every((x, i) => x === model[i]);
  }), { numRuns: 2000 });
  t.equal(runs >= 2000, true, `${runs} random sequences agreed with an Array`);
});

t.test('InFlight: the oldest comes off first, growth keeps the order, a removed one is gone', async (t) => {
  const list = new InFlight<{ id: number }>();
  const made = Array.from({ length: 100 }, (_, id) => ({ id }));
  for (const x of made.slice(0, 6)) list.push(x);
  t.ok(list.remove(made[0]!) && list.remove(made[1]!), 'the two oldest come off');
  for (const x of made.slice(6)) list.push(x); // wraps, then grows past 8, 16, … slots
  t.same(list.toArray().map((x) => x.id), made.slice(2).map((x) => x.id), 'oldest first after wrap-around and growth');
  t.equal(list.remove(made[50]!), true, 'one from the middle');
  t.equal(list.remove(made[50]!), false, 'not twice');
  t.equal(list.remove({ id: 2 }), false, 'an equal object that is not in flight is not removed');
  t.equal(list.length, 97);
  t.equal(list.toArray().some((x) => x.id === 50), false, 'the middle one is gone');
});

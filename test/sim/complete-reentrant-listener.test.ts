// A console port's data listener runs inside the device's serve(); a listener that calls
// completeNow() (or reads held) re-enters the engine while a batch is being completed. A chain
// already served in the outer batch must not be served (and used) again, and held must not count it.
// Found by a breaker against de88f80, which took a batch's served chains off inFlight in one splice
// at its end (to save a shift() per chain): "a" was delivered and used twice, and a listener calling
// completeNow() on every chunk recursed until the stack overflowed. The kind: device bookkeeping
// deferred past a call into user code. The engine went back to taking each chain off before it
// is served.
import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { SimDriver, SplitRing, settle } from '../support/sim-driver.js';

t.test('completeNow() from a port listener inside a batch serves each chain once', async (t) => {
  const sim = createSimDevice({ type: 'console', multiport: false, loopback: false, completion: 'manual' });
  const d = new SimDriver(sim);
  d.start();
  const rx = new SplitRing(d, 8);
  const tx = new SplitRing(d, 8);
  d.setupQueue(0, rx);
  d.setupQueue(1, tx);
  d.driverOk();
  const port = sim.port(0)!;
  const seen: string[] = [];
  const heldInside: number[] = [];
  let nested = -1;
  let entered = false;
  port.onData((chunk) => {
    seen.push(Buffer.from(chunk).toString());
    heldInside.push(sim.held);
    if (!entered) {
      entered = true;
      nested = sim.completeNow();
    }
  });
  for (const s of ['a', 'b', 'c']) tx.add([{ addr: d.buffer(Buffer.from(s)).iova, len: 1 }]);
  d.notify(1);
  await settle();
  t.equal(sim.held, 3);
  const outer = sim.completeNow();
  t.same(seen, ['a', 'b', 'c'], 'each chunk delivered once');
  t.same(heldInside, [2, 1, 0], 'held does not count a chain being served');
  t.equal(nested + outer, 3, 'three completions in all');
  t.equal(sim.held, 0);
  const used = tx.takeUsed().map((u) => u.id).sort();
  t.same(used, [0, 1, 2], 'each chain used once');
  t.equal(sim.stats.completed[1], 3);
  t.same(sim.violations, []);
  t.equal(sim.failure, undefined);
});

t.test('a listener that calls completeNow() on every chunk ends, each chain served once', async (t) => {
  const sim = createSimDevice({ type: 'console', multiport: false, loopback: false, completion: 'manual' });
  const d = new SimDriver(sim);
  d.start();
  d.setupQueue(0, new SplitRing(d, 8));
  const tx = new SplitRing(d, 8);
  d.setupQueue(1, tx);
  d.driverOk();
  const seen: string[] = [];
  sim.port(0)!.onData((chunk) => {
    seen.push(Buffer.from(chunk).toString());
    sim.completeNow();
  });
  for (const s of ['a', 'b', 'c', 'd']) tx.add([{ addr: d.buffer(Buffer.from(s)).iova, len: 1 }]);
  d.notify(1);
  await settle();
  sim.completeNow();
  t.same([...seen].sort(), ['a', 'b', 'c', 'd']);
  t.same(tx.takeUsed().map((u) => u.id).sort(), [0, 1, 2, 3]);
  t.equal(sim.held, 0);
  t.equal(sim.failure, undefined);
});

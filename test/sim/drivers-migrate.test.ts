// Stop / snapshot / reinit with every queue of a multi-queue blk device (4 request queues) and a
// multi-pair net device (3 pairs, control queue, MRG_RXBUF): traffic over all queues, stops at
// random points with requests in flight, reinit on the same or a second device, and every request
// completes exactly once (the rehearsal engine checks data and counts device executions).

import t from 'tap';
import { rehearse } from '../../cli/rehearsal/engine.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const MECHANISMS = [
  { query: 'state=ring-state&mode=hold', mechanism: 'ring-state' },
  { query: 'state=ring-state&mode=drain', mechanism: 'ring-state' },
  { query: 'state=suspend', mechanism: 'suspend' },
  { query: 'state=none', mechanism: 'quiesce' },
] as const;

const DEVICES = { blk: 'sim:blk?queues=4', net: 'sim:net?pairs=3&mergeable=1' } as const;

for (const workload of ['blk', 'net'] as const) {
  for (const layout of ['split', 'packed'] as const) {
    for (const m of MECHANISMS) {
      t.test(`${workload} (${DEVICES[workload]}) ${layout}, ${m.query}: every request exactly once`, async (t) => {
        for (const [seed, other] of [[1, false], [2, true], [3, true]] as const) {
          const device = `${DEVICES[workload]}&layout=${layout}&${m.query}&latency=1`;
          const r = await rehearse({
            device, ...(other ? { to: device } : {}), cycles: 3, inflight: 16, seed, mechanism: m.mechanism, layout, requestsPerCycle: 80,
          });
          t.ok(r.ok, `seed ${seed}${other ? ', two devices' : ''}: ${JSON.stringify(r.requests)}`);
          t.equal(r.requests.completed, r.requests.submitted);
          t.equal(r.mechanism, m.mechanism);
        }
      });
    }
  }
}

t.test('after reinit the net driver sends VQ_PAIRS_SET again; frames in flight on pair 2 arrive once', async (t) => {
  const sim = createSimDevice({ type: 'net', queuePairs: 3, state: { ringState: true }, mode: 'hold', completion: { latencyMs: 5 } });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => net.close());
  const got: number[] = [];
  net.onFrame((f) => got.push(f.pair));
  const sends = [0, 1, 2, 2].map((p) => net.send(new Uint8Array(100).fill(p), {}, p));
  await new Promise((r) => setImmediate(r));
  t.equal(await net.stop(), 'ring-state');
  t.ok(sim.held > 0, 'transmits held in the device at the stop');
  await net.reinit(net.snapshot());
  t.equal(sim.activePairs, 3, 'the reset device was told the pair count again');
  await Promise.all(sends);
  for (let i = 0; i < 100 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 2));
  t.same(got.sort(), [0, 1, 2, 2], 'every frame once, on its pair');
});

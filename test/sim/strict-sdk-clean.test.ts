// The SDK's own drivers on the strict reference device break no rule: blk and net traffic, stop /
// snapshot / reinit cycles with every mechanism (ring-state in drain and hold mode, suspend with a
// resume and with a reinit, quiesce), on the same device and on a second one sharing the memory,
// split and packed — and the device's `violations` stay empty throughout.

import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport, type OpenedDevice } from '../../lib/open.js';
import type { Violation } from '../../lib/sim/index.js';

const MECHANISMS = [
  { query: 'state=ring-state&mode=hold', mechanism: 'ring-state' },
  { query: 'state=ring-state&mode=drain', mechanism: 'ring-state' },
  { query: 'state=suspend', mechanism: 'suspend' },
  { query: 'state=none', mechanism: 'quiesce' },
] as const;

function violations(...devs: OpenedDevice[]): Violation[] {
  return devs.flatMap((d) => [...(d.sim?.violations ?? [])]);
}

/** Nothing recorded at all. */
function assertClean(t: Test, devs: OpenedDevice[]): void {
  t.same(violations(...devs), [], 'the driver broke no rule');
}

function pattern(sector: number, round: number): Uint8Array {
  return new Uint8Array(4096).fill((sector * 7 + round) & 0xff);
}

for (const layout of ['split', 'packed'] as const) {
  for (const m of MECHANISMS) {
    t.test(`blk ${layout}, ${m.query}: no violation`, async (t) => {
      const address = `sim:blk?queues=2&layout=${layout}&${m.query}&latency=1&discard=1&writezeroes=1`;
      const src = await openTransport(address);
      const dst = await openTransport(address, { shareWith: src });
      const blk = await BlkDriver.open(src.transport, { layout, depth: 8 });
      t.teardown(() => blk.close());
      await blk.write(0, pattern(0, 9));
      t.same(violations(src), [], 'opening and running: no violation at all');
      for (let round = 0; round < 4; round++) {
        // Requests in flight when the stop comes.
        const writes = Array.from({ length: 12 }, (_, i) => blk.write(i * 8, pattern(i, round)));
        const flush = blk.flush();
        await new Promise((r) => setImmediate(r));
        t.equal(await blk.stop({ mechanism: m.mechanism }), m.mechanism, `round ${round}: stopped with ${m.mechanism}`);
        const snap = blk.snapshot();
        if (m.mechanism === 'suspend' && round % 2 === 0) await blk.resume();
        else await blk.reinit(snap, round === 2 ? { target: dst.transport } : {});
        await Promise.all([...writes, flush]);
        const back = await blk.readMany(Array.from({ length: 12 }, (_, i) => ({ sector: i * 8, sectors: 8 })));
        t.ok(back.every((b, i) => b.every((x) => x === ((i * 7 + round) & 0xff))), `round ${round}: data intact`);
      }
      await blk.discard([{ sector: 512, sectors: 8 }]);
      await blk.writeZeroes([{ sector: 520, sectors: 8 }]);
      t.ok((await blk.getId()).length > 0, 'GET_ID');
      assertClean(t, [src, dst]);
    });

    t.test(`net ${layout}, ${m.query}: no violation`, async (t) => {
      const address = `sim:net?pairs=2&mergeable=1&layout=${layout}&${m.query}&latency=1`;
      const src = await openTransport(address);
      const dst = await openTransport(address, { shareWith: src });
      const net = await NetDriver.open(src.transport, { layout });
      t.teardown(() => net.close());
      await net.setQueuePairs(2);
      const got: number[] = [];
      net.onFrame((f) => got.push(f.frame[0]!));
      let sent = 0;
      await net.send(new Uint8Array(60).fill(sent++));
      t.same(violations(src), [], 'opening and running: no violation at all');
      for (let round = 0; round < 4; round++) {
        const sends = Array.from({ length: 8 }, () => net.send(new Uint8Array(200 + sent).fill(sent++ & 0xff)));
        await new Promise((r) => setImmediate(r));
        t.equal(await net.stop({ mechanism: m.mechanism }), m.mechanism, `round ${round}: stopped with ${m.mechanism}`);
        const snap = net.snapshot();
        if (m.mechanism === 'suspend' && round % 2 === 0) await net.resume();
        else await net.reinit(snap, round === 2 ? { target: dst.transport } : {});
        await Promise.all(sends);
      }
      for (let i = 0; i < 200 && got.length < sent; i++) await new Promise((r) => setTimeout(r, 2));
      t.equal(got.length, sent, 'every frame came back');
      assertClean(t, [src, dst]);
    });
  }
}

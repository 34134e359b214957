// Soak, exactly once: 1,000 stop → snapshot file → reinit cycles on the reference device, at
// seeded random points with requests in flight, over every mechanism, both layouts, the same and
// a second device, blk and net. Each rehearsal must end with 0 lost, 0 duplicated, 0 corrupted and
// every submitted request completed; for blk the reference device's own count of executions must
// equal the driver's count of completions (nothing carried out twice).

import t from 'tap';
import { rehearse } from '../../cli/rehearsal/engine.js';

interface Soak {
  device: string;
  to?: boolean;
  mechanism: 'ring-state' | 'suspend' | 'quiesce';
  cycles: number;
}

const SOAKS: Soak[] = [
  { device: 'sim:blk?layout=split&state=ring-state&mode=hold&latency=1', mechanism: 'ring-state', cycles: 150 },
  { device: 'sim:blk?layout=packed&state=ring-state&mode=hold&latency=1', mechanism: 'ring-state', cycles: 150, to: true },
  { device: 'sim:blk?layout=split&state=ring-state&mode=drain&latency=1', mechanism: 'ring-state', cycles: 100, to: true },
  { device: 'sim:blk?layout=packed&state=suspend&latency=1', mechanism: 'suspend', cycles: 100 },
  { device: 'sim:blk?layout=split&state=suspend&latency=1', mechanism: 'suspend', cycles: 100, to: true },
  { device: 'sim:blk?layout=packed&state=none&latency=1', mechanism: 'quiesce', cycles: 100 },
  { device: 'sim:blk?layout=split&state=none', mechanism: 'quiesce', cycles: 100, to: true },
  { device: 'sim:net?layout=split&state=ring-state&mode=hold&latency=1', mechanism: 'ring-state', cycles: 100, to: true },
  { device: 'sim:net?layout=packed&state=suspend', mechanism: 'suspend', cycles: 100 },
];

let total = 0;
for (const [i, s] of SOAKS.entries()) {
  t.test(`${s.device}${s.to ? ' ⇄ a second device' : ''}, ${s.mechanism}: ${s.cycles} cycles exactly once`, async (t) => {
    const seed = 7000 + i;
    const r = await rehearse({
      device: s.device, ...(s.to ? { to: s.device } : {}), cycles: s.cycles, inflight: 8, seed,
      mechanism: s.mechanism, layout: 'auto', requestsPerCycle: 12,
    });
    const q = r.requests;
    t.equal(r.cycles, s.cycles, `${s.cycles} cycles ran (seed ${seed})`);
    t.ok(r.cycle_reports.some((c) => c.inFlightAtStop > 0), 'requests were in flight at some stops');
    t.same({ lost: q.lost, duplicated: q.duplicated, corrupted: q.corrupted }, { lost: 0, duplicated: 0, corrupted: 0 }, `seed ${seed}: ${JSON.stringify(q)}`);
    t.equal(q.completed, q.submitted, 'every submitted request completed');
    if (r.device_executions !== undefined) t.ok(r.device_executions >= q.completed, 'the device carried out every completed request');
    t.ok(r.ok, 'the verdict is OK');
    total += r.cycles;
  });
}

t.test('the soak ran at least 1,000 cycles', async (t) => {
  t.ok(total >= 1000, `${total} stop/restore cycles`);
});

// `uvirtio check` on the reference device with no fault: on every device model, in both ring
// layouts and with the options that turn features off, every check passes or is n/a — and the
// suite writes nothing outside --scratch-sector (which it puts back), within about a second.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import type { SimBlkDevice } from '../../lib/sim/index.js';
import { CHECKS } from '../../cli/check/all.js';
import { runChecks } from '../../cli/check/runner.js';
import { checkSim, notPassed } from '../support/check-run.js';

const ADDRESSES = [
  'sim:blk', 'sim:blk?layout=split', 'sim:blk?layout=packed', 'sim:blk?indirect=0&eventidx=0', 'sim:blk?layout=split&indirect=0',
  'sim:blk?state=none', 'sim:blk?state=suspend', 'sim:blk?state=ring-state&mode=hold&latency=2', 'sim:blk?ro=1',
  'sim:blk?queues=4&blksize=4096&discard=1&writezeroes=1', 'sim:blk?queuesize=8',
  'sim:net', 'sim:net?layout=split', 'sim:net?mergeable=1&pairs=2', 'sim:net?state=none&eventidx=0',
  'sim:rng', 'sim:rng?layout=split', 'sim:rng?indirect=0&state=none',
];

for (const address of ADDRESSES) {
  t.test(`${address}: everything passes or is n/a`, async (t) => {
    const r = await checkSim(address);
    t.same(notPassed(r), {}, 'no check failed nor warned');
    t.equal(r.results.length, CHECKS.length, 'every check reported');
    t.ok(r.ok, 'ok');
    const na = r.results.filter((c) => c.result === 'n/a');
    t.ok(na.every((c) => c.detail.length > 0), 'every n/a says why');
    t.ok(r.ms < 5000, `the suite took ${r.ms} ms`);
  });
}

t.test('the checks that apply run: the split ring and the type checks pass on sim:blk, packed ones n/a without RING_PACKED', async (t) => {
  const byId = (r: Awaited<ReturnType<typeof checkSim>>): Map<string, string> => new Map(r.results.map((c) => [c.id, c.result]));
  const full = byId(await checkSim('sim:blk'));
  for (const id of ['vq.split.used-id', 'vq.packed.wrap', 'blk.read-after-write', 'state.restore', 'pci.msix-vector', 'status.needs-reset']) {
    t.equal(full.get(id), 'pass', `${id} ran and passed`);
  }
  const split = byId(await checkSim('sim:blk?layout=split&state=none', undefined, null));
  t.equal(split.get('vq.packed.chains'), 'n/a', 'no packed checks without RING_PACKED');
  t.equal(split.get('state.stop-shows'), 'n/a', 'no STOP checks without RING_STATE');
  t.equal(split.get('blk.read-after-write'), 'n/a', 'no write without --scratch-sector');
  t.equal(byId(await checkSim('sim:rng')).get('blk.read'), 'n/a', 'blk checks are n/a on rng');
});

t.test('writes touch only the scratch sector, and are undone; without one, nothing is written', async (t) => {
  for (const scratch of [null, 8]) {
    const dev = await openTransport('sim:blk');
    const sim = (dev as unknown as { sim: SimBlkDevice }).sim;
    for (let i = 0; i < sim.disk.length; i++) sim.disk[i] = (i * 13) & 0xff;
    const before = sim.disk.slice();
    const r = await runChecks(dev, CHECKS, { timeoutMs: 2000, scratchSector: scratch });
    dev.transport.close();
    t.same(notPassed(r), {});
    t.ok(Buffer.from(sim.disk).equals(Buffer.from(before)), `scratch ${scratch}: the disk is as it was`);
  }
});

t.test('a device that will not reset: the rest is n/a, not failed', async (t) => {
  const dev = await openTransport('sim:blk');
  const sim = (dev as unknown as { sim: SimBlkDevice }).sim;
  const r = await runChecks(dev, CHECKS, { timeoutMs: 2000, scratchSector: null, hooks: { before: (id) => id === 'status.reset-reads-zero' && sim.injectFault({ kind: 'reset-stuck' }) } });
  dev.transport.close();
  t.same(Object.keys(notPassed(r)), ['status.reset-reads-zero']);
  const rest = r.results.slice(1);
  t.ok(rest.every((c) => c.result === 'n/a' && /did not complete a reset/.test(c.detail)), 'every later check n/a, naming the reset');
});

t.test('a check that waits on a silent device ends within its bound and names it', async (t) => {
  const dev = await openTransport('sim:blk');
  const sim = (dev as unknown as { sim: SimBlkDevice }).sim;
  const r = await runChecks(dev, CHECKS, {
    timeoutMs: 400, scratchSector: null, only: ['blk.read'],
    hooks: { before: () => sim.injectFault({ kind: 'completion-silence' }), after: () => sim.clearFaults() },
  });
  dev.transport.close();
  const [read] = r.results;
  t.equal(read?.result, 'fail');
  t.match(read?.detail, /\d+ ms/, `the bound is named: ${read?.detail}`);
  t.ok(read!.ms < 1500, `ended after ${read?.ms} ms (bound 400)`);
});

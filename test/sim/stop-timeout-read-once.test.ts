// stop() and reinit() check options.timeoutMs (a number above 0, at most one hour: every wait is
// bounded) and then read it again to run (three reads in all, the first two checked): an options
// object whose timeoutMs is a getter (or a Proxy) answering 100 to the checks and Infinity to the
// third passes the checks and the stop then waits with no bound — a quiesce stop with a request the device never completes never settles.
// Chains are read once for the same reason (README: "a getter or a Proxy cannot answer the check
// one thing and the writer another"). What should happen: each option is read once; the stop ends
// with E_STOP_TIMEOUT within the bound that was checked.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('a quiesce stop whose timeoutMs getter answers 100 to the checks, then Infinity, still ends within 100 ms', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(async () => {
    sim.completeNow();
    await blk.close();
  });
  const read = settledCode(blk.read(0, 8), 10_000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.equal(sim.held, 1, 'a read the device holds');
  let reads = 0;
  const options = {
    mechanism: 'quiesce' as const,
    get timeoutMs(): number {
      reads++;
      return reads <= 2 ? 100 : Infinity;
    },
  };
  t.equal(await settledCode(blk.stop(options), 5000), 'E_STOP_TIMEOUT', 'the stop ends with E_STOP_TIMEOUT, not HANG');
  t.equal(reads, 1, 'timeoutMs was read once');
  sim.completeNow();
  t.equal(await read, 'ok');
});

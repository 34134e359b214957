// A driver's options and arguments come from callers who may pass anything: a value with no string
// form (an object without a prototype, a symbol, a bigint) must be refused with E_INVALID_ARGUMENT
// naming it by kind, not throw a TypeError while the message is built (template literals and
// JSON.stringify throw for those). Each open is on a fresh reference device, left closed.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { codeOfAsync } from '../support/codes.js';

const hostile: [string, unknown][] = [['a prototype-less object', Object.create(null)], ['a symbol', Symbol('x')], ['a bigint', 5n]];

for (const [kind, value] of hostile) {
  t.test(`${kind} as an option or argument is E_INVALID_ARGUMENT`, async (t) => {
    for (const key of ['maxTransfer', 'depth', 'queues'] as const) {
      const sim = createSimDevice({ type: 'blk' });
      t.equal(await codeOfAsync(BlkDriver.open(new VirtioPciTransport(sim.fn), { [key]: value } as never)), 'E_INVALID_ARGUMENT', `blk ${key}`);
    }
    for (const key of ['mtu', 'rxBuffers', 'queuePairs', 'rxBufferSize'] as const) {
      const sim = createSimDevice({ type: 'net', mergeable: true });
      t.equal(await codeOfAsync(NetDriver.open(new VirtioPciTransport(sim.fn), { [key]: value } as never)), 'E_INVALID_ARGUMENT', `net ${key}`);
    }
    const rngSim = createSimDevice({ type: 'rng' });
    const rng = await RngDriver.open(new VirtioPciTransport(rngSim.fn));
    t.equal(await codeOfAsync(rng.read(value as never)), 'E_INVALID_ARGUMENT', 'rng read(n)');
    await rng.close();
    const conSim = createSimDevice({ type: 'console' });
    const con = await ConsoleDriver.open(new VirtioPciTransport(conSim.fn));
    t.equal(await codeOfAsync(con.waitForPort(0, value as never)), 'E_INVALID_ARGUMENT', 'console waitForPort timeoutMs');
    await con.close();
  });
}

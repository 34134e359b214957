// One VirtioPciTransport per PCI function is enforced by the function object's identity (a
// WeakMap keyed by the PciFunction), so the same function behind a wrapper — a Proxy (a tracing
// wrapper around its register accesses) or an object whose prototype is the function — is taken
// as a free function: a second transport is made over the registers the first one drives, a
// driver on it resets the device under the first driver, and after the first transport's close()
// (which closed the function) a wrapper still gets a transport instead of E_CLOSED. What should
// happen: the claim follows the function, not the object passed: E_DEVICE_IN_USE while a transport
// is open on it, E_CLOSED once one closed it.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { codeOf, settledCode } from '../support/codes.js';

const wrappers = {
  'a Proxy of the function': (fn: object) => new Proxy(fn, {}),
  'an object whose prototype is the function': (fn: object) => Object.create(fn) as object,
};

for (const [name, wrap] of Object.entries(wrappers)) {
  t.test(`${name}: a second transport is refused E_DEVICE_IN_USE; the first driver goes on`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: { latencyMs: 20 } });
    const first = await BlkDriver.open(new VirtioPciTransport(sim.fn), { requestTimeoutMs: 1000 });
    t.teardown(() => first.close());
    const read = settledCode(first.read(0, 8), 5000);
    let second: VirtioPciTransport | undefined;
    const code = codeOf(() => { second = new VirtioPciTransport(wrap(sim.fn) as typeof sim.fn); });
    if (second) {
      const other = await settledCode(BlkDriver.open(second).then((d) => d.close()), 3000);
      t.comment(`a driver on the second transport: ${other}`);
    }
    t.equal(code, 'E_DEVICE_IN_USE', 'the second transport is refused');
    t.equal(await read, 'ok', 'the first driver\'s read completes');
  });

  t.test(`${name}: after the transport's close() closed the function, refused E_CLOSED`, async (t) => {
    const sim = createSimDevice({ type: 'blk' });
    const transport = new VirtioPciTransport(sim.fn);
    transport.close();
    t.equal(codeOf(() => new VirtioPciTransport(wrap(sim.fn) as typeof sim.fn)), 'E_CLOSED');
  });
}

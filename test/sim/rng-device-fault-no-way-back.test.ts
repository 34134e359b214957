// RngDriver after a device fault (needs-reset, or a ring fault such as bad-used-id): the read
// rejects with the device's code, as it should, and its hint says "recover() resets and
// re-initialises it" (README "Failure semantics": how to go on is driver.recover()). But RngDriver
// has no recover() — calling it as told is a TypeError, not a UvirtioError — and every later
// read() is refused with the same fault for the rest of the driver's life, even after the device is
// well again: the worked-example driver has no way back short of close() and a fresh
// openTransport(). What should happen: RngDriver.recover() exists (reset, same features and
// queue, as the other drivers' recover()) and reads work after it.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { codeOfAsync } from '../support/codes.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const layout of ['split', 'packed'] as const) {
  for (const kind of ['needs-reset', 'bad-used-id'] as const) {
    t.test(`${layout}, ${kind}: the hint's recover() exists and brings reads back`, async (t) => {
      const opened = await openTransport(`sim:rng?layout=${layout}`);
      const rng = await RngDriver.open(opened.transport);
      t.teardown(() => rng.close());
      opened.sim!.injectFault({ kind });
      await sleep(10);
      const code = await codeOfAsync(rng.read(16));
      t.equal(code, kind === 'needs-reset' ? 'E_DEVICE_NEEDS_RESET' : 'E_DEVICE_BAD_USED_ID', 'the fault is reported');
      opened.sim!.clearFaults();
      const recover = (rng as unknown as { recover?: () => Promise<void> }).recover;
      t.type(recover, 'function', 'RngDriver has the recover() its errors\' hints and the README point to');
      if (typeof recover !== 'function') return;
      t.equal(await codeOfAsync(recover.call(rng)), 'no error', 'recover() succeeds on a device that is well again');
      t.equal(await codeOfAsync(rng.read(16)), 'no error', 'reads work after recover()');
    });
  }
}

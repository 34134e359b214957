// A device stopped by quiesce (no device support: stop = no requests in flight) sets
// DEVICE_NEEDS_RESET while stopped (status shows 0x40). resume() resolves and the device is 'live';
// recover() — the README's way back from DEVICE_NEEDS_RESET — is then refused E_BAD_STATE ("cannot
// recover while the device is live"), although the status register says it needs a reset, and the
// next request is the one that finds out (rejected E_DEVICE_NEEDS_RESET). The suspend mechanism,
// under the same fault, refuses the resume with E_DEVICE_NEEDS_RESET. What should happen: resume()
// of a device showing DEVICE_NEEDS_RESET does not report it live — it is refused (or the device is
// marked failed) so that recover() is accepted at once and brings it back, without a request
// having to fail first.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { openTransport } from '../../lib/open.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

for (const address of ['sim:blk', 'sim:rng'] as const) {
  t.test(`${address}: quiesce stop, DEVICE_NEEDS_RESET while stopped, resume(): recover() is accepted`, async (t) => {
    const opened = await openTransport(address);
    const drv = address === 'sim:blk' ? await BlkDriver.open(opened.transport, { requestTimeoutMs: 500 }) : await RngDriver.open(opened.transport, { requestTimeoutMs: 500 });
    t.teardown(() => drv.close());
    t.equal(await drv.stop({ mechanism: 'quiesce' }), 'quiesce');
    opened.sim!.injectFault({ kind: 'needs-reset' });
    await new Promise((r) => setTimeout(r, 20));
    t.ok((opened.transport.readStatus() & 0x40) !== 0, 'the device shows DEVICE_NEEDS_RESET');
    const resumed = await codeOfAsync(drv.resume());
    t.comment(`resume(): ${resumed}, phase ${drv.device.phase}`);
    t.not(drv.device.phase, 'live', 'a device that needs a reset is not reported live');
    const recovered = await codeOfAsync(drv.recover());
    t.equal(recovered, 'no error', `recover() brings it back (got ${recovered})`);
    const read = address === 'sim:blk' ? (drv as BlkDriver).read(0, 1) : (drv as RngDriver).read(16);
    t.equal(await settledCode(read, 3000), 'ok', 'and the next request completes');
  });
}

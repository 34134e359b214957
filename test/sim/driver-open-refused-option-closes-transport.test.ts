// BlkDriver.open(t, { layout: 'split', queueSize: 3 }) (a split ring must be a power of 2) or
// { queueSize: 100000 } is refused E_INVALID_ARGUMENT — the caller's argument — but only after
// VirtioDevice.open succeeded, and the driver's clean-up (device.close()) closes the caller's
// transport too: the caller fixes the option and opens again on the same transport, and gets
// E_CLOSED ("the transport is closed") — the refused call changed something, and the next open
// fails. A refusal from VirtioDevice.open itself (layout 'packed' on a split-only device:
// E_FEATURE_MISSING) leaves the transport open and the second open works. What should happen: an
// open refused for its arguments leaves the transport open and unowned (checked before anything
// is touched, or the device reset without closing the transport), so the corrected open works.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { codeOfAsync } from '../support/codes.js';

for (const options of [{ layout: 'split' as const, queueSize: 3 }, { queueSize: 100_000 }]) {
  t.test(`BlkDriver.open(t, ${JSON.stringify(options)}) refused; the corrected open on t works`, async (t) => {
    const opened = await openTransport('sim:blk');
    const refused = await codeOfAsync(async () => { const d = await BlkDriver.open(opened.transport, options); await d.close(); });
    t.equal(refused, 'E_INVALID_ARGUMENT', 'the bad option is refused');
    let blk: BlkDriver | undefined;
    const again = await codeOfAsync(async () => { blk = await BlkDriver.open(opened.transport); });
    t.teardown(() => blk?.close());
    t.equal(again, 'no error', `the open with good options works on the same transport (got ${again})`);
  });
}

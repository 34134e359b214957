// A VirtioDevice that let go of its transport with reset() ("the device must be opened again to be
// used (VirtioDevice.open on the same transport: this one lets go of it)") keeps acting on that
// transport: once another driver has opened it, the stale device's reset() (called again, e.g. by
// a careless cleanup path) resets the device under the new owner — its read in flight is stranded
// until the watchdog blames the device (E_DEVICE_UNRESPONSIVE) and the new driver notifies a device
// that is not DRIVER_OK (strict-device violation notify-before-driver-ok) — and the stale device's
// fail() sets FAILED on it (the new driver's read rejected E_DEVICE_FAILED). Its stop(), recover(),
// driverOk() and close() already leave the new owner alone. What should happen: a device that no
// longer owns its transport does not touch it — reset()/fail() refused with a caller's code
// (E_BAD_STATE / E_DEVICE_IN_USE) or a no-op — and the new owner's read completes.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

const ACCEPTABLE = ['ok', 'no error', 'E_BAD_STATE', 'E_DEVICE_IN_USE']; // codeOfAsync says 'no error' for a no-op

for (const op of ['reset', 'fail'] as const) {
  t.test(`reset(), another driver opens the transport, then the stale device's ${op}(): the new driver is left alone`, async (t) => {
    const opened = await openTransport('sim:blk?mode=hold&latency=5');
    const stale = await VirtioDevice.open(opened.transport, {});
    await stale.reset();
    const owner = await BlkDriver.open(opened.transport, { requestTimeoutMs: 500 });
    t.teardown(() => owner.close());
    const pending = settledCode(owner.read(0, 8), 3000);
    const code = await codeOfAsync(async () => { await stale[op](); });
    t.ok(ACCEPTABLE.includes(code), `the stale ${op}() is refused with a caller's code or does nothing (got ${code})`);
    t.equal(await pending, 'ok', 'the new owner\'s read in flight completes');
    t.equal(await settledCode(owner.read(0, 8), 3000), 'ok', 'and the next one');
    t.same(opened.sim!.violations.map((v) => v.id), [], 'no device rule broken');
  });
}

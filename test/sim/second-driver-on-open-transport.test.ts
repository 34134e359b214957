// A second driver opened on a transport that already has a live one — BlkDriver.open(t) twice,
// two opens at once, or VirtioDevice.open(t) of your own beside a driver on the same t: a careless
// caller's mistake. Today nothing refuses it: the second open resets the device and brings it up
// again under the first driver, whose request in flight is stranded (the device forgot its chain)
// until its watchdog reports E_DEVICE_UNRESPONSIVE — the caller's mistake blamed on the device —
// and the first driver's recovery then resets the device under the second, whose read is stranded
// in turn; the first driver also notifies a device that is not DRIVER_OK (the strict device
// records notify-before-driver-ok). What should happen: an open on a transport another open
// VirtioDevice still drives is refused at once with a caller's code (E_BAD_STATE, or
// E_DEVICE_IN_USE as for a device another process holds), and the first driver and its request
// are left alone.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

const REFUSED = ['E_BAD_STATE', 'E_DEVICE_IN_USE', 'E_INVALID_ARGUMENT'];

t.test('BlkDriver.open on a transport a live BlkDriver drives: refused; the first driver\'s read completes', async (t) => {
  const opened = await openTransport('sim:blk?mode=hold&latency=5');
  const first = await BlkDriver.open(opened.transport, { requestTimeoutMs: 500 });
  t.teardown(() => first.close());
  const pending = settledCode(first.read(0, 8), 3000);
  let second: BlkDriver | undefined;
  const code = await codeOfAsync(async () => { second = await BlkDriver.open(opened.transport); });
  t.teardown(() => second?.close());
  t.ok(REFUSED.includes(code), `the second open is refused with a caller's code (got ${code})`);
  t.equal(await pending, 'ok', 'the first driver\'s read in flight completes');
  t.same(opened.sim!.violations.map((v) => v.id), [], 'no device rule broken');
});

t.test('VirtioDevice.open (your own driver) beside a live BlkDriver on the same transport: refused', async (t) => {
  const opened = await openTransport('sim:blk?mode=hold&latency=5');
  const first = await BlkDriver.open(opened.transport, { requestTimeoutMs: 500 });
  t.teardown(() => first.close());
  const pending = settledCode(first.read(0, 8), 3000);
  let dev: VirtioDevice | undefined;
  const code = await codeOfAsync(async () => { dev = await VirtioDevice.open(opened.transport, {}); });
  t.teardown(() => dev?.close());
  t.ok(REFUSED.includes(code), `refused with a caller's code (got ${code})`);
  t.equal(await pending, 'ok', 'the driver\'s read in flight completes');
});

t.test('two BlkDriver.open at once on one transport: one of them is refused', async (t) => {
  const opened = await openTransport('sim:blk');
  const results = await Promise.allSettled([BlkDriver.open(opened.transport), BlkDriver.open(opened.transport)]);
  t.teardown(async () => { for (const r of results) if (r.status === 'fulfilled') await r.value.close(); });
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one driver owns the device');
});

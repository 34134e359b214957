// close() of a VirtioDevice (or of its driver) that already let go of its transport with reset()
// reset and closed that transport: "reset() … lets go of it" and "VirtioDevice.open on the same
// transport" is how to go on, but a cleanup that also closes the old device (a driver's close()
// after device.reset(), a try/finally) closed the transport under the caller, and the next
// VirtioDevice opened on it was refused E_CLOSED. What should happen: after reset() the device no
// longer touches the transport — its close() neither resets nor closes it — and the next open works.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

t.test('VirtioDevice: reset(), close(), then VirtioDevice.open on the same transport works', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  t.teardown(() => transport.close());
  const old = await VirtioDevice.open(transport, {});
  old.setupQueue(0);
  await old.driverOk();
  await old.reset();
  await old.close();
  t.equal(transport.closed, false, 'the transport is still open');
  t.equal(await codeOfAsync(async () => { const next = await VirtioDevice.open(transport, {}); await next.close({ keepTransport: true }); }), 'no error',
    'the next open on it works');
});

t.test('BlkDriver: device.reset(), driver close(), then a new BlkDriver on the transport reads', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  const blk = await BlkDriver.open(transport);
  await blk.device.reset();
  await blk.close();
  t.equal(transport.closed, false, 'the transport is still open');
  const next = await BlkDriver.open(transport);
  t.teardown(() => next.close());
  t.equal(await settledCode(next.read(0, 8), 3000), 'ok', 'the new driver reads');
});

t.test('reset(), another device opens the transport, then the old close(): the new owner is left alone', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  const blk = await BlkDriver.open(transport);
  await blk.device.reset();
  const next = await BlkDriver.open(transport);
  t.teardown(() => next.close());
  await blk.close();
  t.equal(transport.closed, false, 'the transport is still open');
  t.equal(await settledCode(next.read(0, 8), 3000), 'ok', 'the new driver reads');
});

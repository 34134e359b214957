// Found by a breaker (fixed: VirtioPciTransport.onLost is a Listeners set). What it was:
// A listener site 95b16b2 missed: VirtioPciTransport.onLost (the VirtioTransport.onLost of the PCI
// transport, public API) still keeps a bare Set and calls `for (const l of [...lostListeners]) l(e)`
// in close(). A listener that throws makes transport.close() throw part-way: the listeners after it
// are not called — when the user subscribed before opening the driver, that is the device's own
// (DeviceCore markFailed), so the driver's pending requests never settle — and fn.close() is never
// reached. A listener that is not a function is accepted (no E_INVALID_ARGUMENT) and fails only at
// close(), with a TypeError. Through net.close() (device.close → transport.close) the throw makes
// net.close() reject before QueueSet.close settles anything: a send in flight never settles.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

t.test('PCI onLost refuses a listener that is not a function (E_INVALID_ARGUMENT), as every other listener set', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const transport = new VirtioPciTransport(sim.fn);
  t.throws(() => transport.onLost(42 as never), { code: 'E_INVALID_ARGUMENT' });
  t.doesNotThrow(() => transport.close(), 'close');
});

t.test('PCI onLost: a throwing listener neither makes transport.close() throw nor keeps the device from hearing of it', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const transport = new VirtioPciTransport(sim.fn);
  const onWarning = (): void => undefined;
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  transport.onLost(() => { throw new Error('listener bug'); });
  const net = await NetDriver.open(transport, { rxBuffers: 4 });
  t.teardown(() => net.close());
  t.doesNotThrow(() => transport.close(), 'close() does not throw');
  t.not(net.device.phase, 'live', `the device heard the transport was lost (phase ${net.device.phase})`);
});

t.test('PCI onLost: a throwing listener neither makes net.close() reject nor strands the requests it was to settle', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const transport = new VirtioPciTransport(sim.fn);
  const onWarning = (): void => undefined;
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  const net = await NetDriver.open(transport, { rxBuffers: 4 });
  transport.onLost(() => { throw new Error('listener bug'); });
  sim.injectFault({ kind: 'completion-silence', queue: 1 }); // a send stays in flight
  const sent = net.send(new Uint8Array(60)).then(() => 'sent', (e: { code?: string }) => e.code ?? 'error');
  await new Promise((r) => setTimeout(r, 10));
  const closed = await net.close().then(() => 'closed', (e: Error) => `rejected: ${e.message}`);
  t.equal(closed, 'closed', 'net.close() resolves');
  t.equal(await Promise.race([sent, new Promise((r) => setTimeout(() => r('never settled'), 1000))]), 'E_CLOSED', 'the send in flight settles');
});

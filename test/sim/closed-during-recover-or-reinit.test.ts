// Found by a breaker (fixed: recover() and reinit() report E_CLOSED when the device was closed under
// them). device.close() while recover() or reinit() is under way resets and releases the transport;
// the steps still running then fail on a dead device — FEATURES_OK does not stick — and recover()
// rejected with E_FEATURES_NOT_OK, a device refusing features, which tells a caller to try another
// device or give up for the wrong reason. The close is the reason: E_CLOSED, as documented.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const codeOf = (p: Promise<unknown>): Promise<string | undefined> => p.then(() => 'resolved', (e: { code?: string }) => e.code);

t.test('recover() with the device closed under it rejects with E_CLOSED', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix' });
  t.teardown(() => net.close());
  sim.injectFault({ kind: 'needs-reset' });
  for (let i = 0; i < 200 && net.device.phase === 'live'; i++) await sleep(1);
  t.equal(net.device.phase, 'needs-reset');
  const recovering = codeOf(net.recover());
  await Promise.resolve(); // recover() is past its first step
  await Promise.resolve();
  const closing = net.device.close();
  t.equal(await recovering, 'E_CLOSED', 'recover() names the close, not a feature refusal');
  await closing;
});

t.test('reinit() with the device closed under it rejects with E_CLOSED', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix' });
  t.teardown(() => net.close());
  await net.stop();
  const snapshot = net.snapshot();
  const reiniting = codeOf(net.reinit(snapshot));
  await Promise.resolve();
  await Promise.resolve();
  const closing = net.device.close();
  t.equal(await reiniting, 'E_CLOSED', 'reinit() names the close');
  await closing;
});

// The same kind, before the call rather than during it: stop(), resume() and reinit() on a device
// already closed said E_BAD_STATE ("cannot stop while the device is closed") where recover() said
// E_CLOSED. Every phase-gated call now names the close.
t.test('stop(), resume() and reinit() on a closed device reject with E_CLOSED, as recover() does', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { interrupts: 'msix' });
  await net.stop();
  const snapshot = net.snapshot();
  await net.device.close();
  t.equal(await codeOf(net.device.stop()), 'E_CLOSED', 'stop()');
  t.equal(await codeOf(net.device.resume()), 'E_CLOSED', 'resume()');
  t.equal(await codeOf(net.device.reinit(snapshot)), 'E_CLOSED', 'reinit()');
  t.equal(await codeOf(net.device.driverOk()), 'E_CLOSED', 'driverOk()');
  await net.close();
});

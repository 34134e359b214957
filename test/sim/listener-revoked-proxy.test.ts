// Found by a breaker (fixed: shown() names a revoked Proxy 'an object'; Listeners reports through
// callbackThrew, which never throws). What it was:
// A listener that throws a revoked Proxy (or is passed one instead of a function) escapes the
// "never throws" promise of Listeners: thrownMessage() falls back to shown(), and shown() calls
// Array.isArray(value) for every object — which throws a TypeError ("Cannot perform 'IsArray' on a
// proxy that has been revoked") for a revoked Proxy, outside thrownMessage's try. So
// Listeners.emit() throws from its catch block (the listeners after it are not called, the SDK work
// that emitted unwinds), and Listeners.add() throws a TypeError without a code instead of
// E_INVALID_ARGUMENT. The same shown() names option values (checkValue), so an option given a
// revoked Proxy also gets a code-less TypeError.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';
import { Listeners } from '../../lib/util/listeners.js';
import { shown, thrownMessage } from '../../lib/util/shown.js';

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

t.test('shown() and thrownMessage() name a revoked Proxy without throwing', async (t) => {
  t.doesNotThrow(() => shown(revoked()), 'shown');
  t.doesNotThrow(() => thrownMessage(revoked()), 'thrownMessage');
});

t.test('Listeners.emit: a listener throwing a revoked Proxy is reported and the next one is called', async (t) => {
  const l = new Listeners<[number]>('test');
  const got: number[] = [];
  l.add(() => { throw revoked(); });
  l.add((n) => { got.push(n); });
  const onWarning = (): void => undefined;
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  t.doesNotThrow(() => l.emit(1), 'emit never throws');
  t.same(got, [1], 'the other listener was called');
});

t.test('Listeners.add refuses a revoked Proxy with E_INVALID_ARGUMENT', async (t) => {
  const l = new Listeners<[number]>('test');
  t.throws(() => l.add(revoked() as never), { code: 'E_INVALID_ARGUMENT' });
});

t.test('NetDriver: a frame listener throwing a revoked Proxy does not keep the next listener from the frame', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 4 });
  t.teardown(() => net.close());
  const onWarning = (): void => undefined;
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  let got = 0;
  net.onFrame(() => { throw revoked(); });
  net.onFrame(() => { got++; });
  for (let i = 0; i < 3; i++) await net.send(new Uint8Array(60).fill(i));
  for (let i = 0; i < 200 && got < 3; i++) await new Promise((r) => setTimeout(r, 2));
  t.equal(got, 3, 'every frame reached the second listener');
});

t.test('an option given a revoked Proxy is refused with E_INVALID_ARGUMENT', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  await t.rejects(NetDriver.open(new VirtioPciTransport(sim.fn), { pollBudget: revoked() as never }), { code: 'E_INVALID_ARGUMENT' });
});

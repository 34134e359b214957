// recover() and reset() at once on one VirtioDevice: reset() was not one of the device's exclusive
// operations, so a reset() while recover() waited for the device's reset let go of the transport
// and forgot the queues, and recover() then went on — DRIVER_OK on a transport the device had let
// go of, the phase 'live' again over a device that had released it — and the next owner's
// device was driven by both. The same for two reset() calls at once and a close() during a reset().
// What should happen: every call settles; the one that loses is refused E_BAD_STATE (or waits for
// the other); a device let go with reset() never touches its transport again.

import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { settledCode } from '../support/codes.js';

async function needsReset(t: { teardown(fn: () => unknown): void }) {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  const blk = await BlkDriver.open(transport);
  t.teardown(() => blk.close());
  sim.injectFault({ kind: 'needs-reset' });
  for (let i = 0; i < 50 && blk.device.phase !== 'needs-reset'; i++) await new Promise((r) => setImmediate(r));
  return { sim, transport, blk };
}

/** After the race: if the old device let go of its transport, it stays let go and another driver reads on it. */
async function transportLeftAlone(t: Test, sim: ReturnType<typeof createSimDevice>, transport: VirtioPciTransport, blk: BlkDriver): Promise<void> {
  if (blk.device.phase !== 'reset') return;
  const next = await BlkDriver.open(transport);
  t.teardown(() => next.close());
  t.equal(await settledCode(next.read(0, 8), 3000), 'ok', 'another driver on the transport reads');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(blk.device.phase, 'reset', 'the old device stays let go');
  t.equal(await settledCode(next.read(0, 8), 3000), 'ok', 'and the new driver keeps reading');
  t.same(sim.violations.map((v: { id: string }) => v.id), [], 'no device rule broken');
}

t.test('recover() then reset() at once: both settle, the loser with E_BAD_STATE, and a reset device stays let go', async (t) => {
  const { sim, transport, blk } = await needsReset(t);
  const recovering = settledCode(blk.device.recover(), 3000);
  const resetting = settledCode(blk.device.reset(), 3000);
  const [rec, res] = await Promise.all([recovering, resetting]);
  t.ok(rec !== 'HANG' && res !== 'HANG', `both settle (recover: ${rec}, reset: ${res})`);
  t.ok([rec, res].includes('E_BAD_STATE') || (rec === 'ok' && res === 'ok' && blk.device.phase === 'reset'), 'one loses with E_BAD_STATE, or they ran one after the other');
  t.not(blk.device.phase === 'live' && res === 'ok', true, 'a device reset() is never live again');
  await transportLeftAlone(t, sim, transport, blk);
});

t.test('reset() then recover() at once: both settle, the loser with E_BAD_STATE', async (t) => {
  const { sim, transport, blk } = await needsReset(t);
  const resetting = settledCode(blk.device.reset(), 3000);
  const recovering = settledCode(blk.device.recover(), 3000);
  const [res, rec] = await Promise.all([resetting, recovering]);
  t.equal(res, 'ok', 'reset() wins');
  t.equal(rec, 'E_BAD_STATE', 'recover() is refused E_BAD_STATE');
  t.equal(blk.device.phase, 'reset');
  await transportLeftAlone(t, sim, transport, blk);
});

t.test('the driver\'s recover() then device.reset(): both settle, the device stays let go', async (t) => {
  const { sim, transport, blk } = await needsReset(t);
  const recovering = settledCode(blk.recover(), 3000);
  const resetting = settledCode(blk.device.reset(), 3000);
  const [rec, res] = await Promise.all([recovering, resetting]);
  t.ok(rec !== 'HANG' && res !== 'HANG', `both settle (recover: ${rec}, reset: ${res})`);
  t.not(blk.device.phase === 'live' && res === 'ok', true, 'a device reset() is never live again');
  await transportLeftAlone(t, sim, transport, blk);
});

t.test('two reset() at once: both settle, the orphans are handed back once', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const transport = new VirtioPciTransport(sim.fn);
  const blk = await BlkDriver.open(transport);
  t.teardown(() => blk.close());
  const read = settledCode(blk.read(0, 8), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
  const [a, b] = await Promise.all([blk.device.reset(), blk.device.reset()]);
  t.equal(a.length + b.length, 1, `the orphan token is handed back once (got ${a.length} + ${b.length})`);
  t.equal(await read, 'E_CLOSED', 'the read settles');
  t.equal(blk.device.phase, 'reset');
  t.equal(transport.closed, false, 'the transport is left open');
  t.same(sim.violations.map((v: { id: string }) => v.id), [], 'no device rule broken');
});

t.test('close() during a reset(): both settle, and the transport is left open for the next driver', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  const blk = await BlkDriver.open(transport);
  const resetting = settledCode(blk.device.reset(), 3000);
  const closing = settledCode(blk.device.close(), 3000);
  t.same(await Promise.all([resetting, closing]), ['ok', 'ok'], 'both settle');
  t.equal(blk.device.phase, 'closed');
  t.equal(transport.closed, false, 'the reset let go of the transport first: the close leaves it open');
  t.equal(await settledCode(blk.close(), 3000), 'ok', 'the driver\'s close() settles');
  const next = await BlkDriver.open(transport);
  t.teardown(() => next.close());
  t.equal(await settledCode(next.read(0, 8), 3000), 'ok', 'the next driver reads');
});

t.test('reset() during a stop: refused E_BAD_STATE, the stop settles', async (t) => {
  const sim = createSimDevice({ type: 'blk', state: { ringState: true } });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => blk.close());
  const stopping = settledCode(blk.stop(), 3000);
  const resetting = settledCode(blk.device.reset(), 3000);
  t.equal(await stopping, 'ok', 'the stop settles');
  t.equal(await resetting, 'E_BAD_STATE', 'the reset() is refused');
  t.equal(blk.device.phase, 'stopped');
});

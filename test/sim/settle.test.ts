// Every request settles exactly once: a device that stops answering, a driver closed with requests
// pending, a device that fails and is recovered — in MSI-X and in polling mode, split and packed.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { codeOfAsync } from '../support/codes.js';

const MODES = [['split', 'auto'], ['split', 'poll'], ['packed', 'auto'], ['packed', 'poll']] as const;

for (const [layout, interrupts] of MODES) {
  const mode = `${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}`;

  t.test(`${mode}: a device that never completes: the watchdog rejects with E_DEVICE_UNRESPONSIVE, bounded; recover() brings it back`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual' });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, requestTimeoutMs: 50 });
    t.teardown(() => blk.close());
    const started = Date.now();
    const pending = [0, 1, 2].map((s) => blk.read(s, 1));
    const codes = await Promise.all(pending.map((p) => codeOfAsync(p)));
    const ms = Date.now() - started;
    t.same(codes, ['E_DEVICE_UNRESPONSIVE', 'E_DEVICE_UNRESPONSIVE', 'E_DEVICE_UNRESPONSIVE'], 'every pending read is rejected with the device\'s failure');
    t.ok(ms < 5000, `settled ${ms} ms after the device went silent (timeout 50 ms)`);
    t.equal(blk.device.phase, 'needs-reset');
    t.match(blk.device.failure?.message ?? '', /returned none for \d+ ms \(request timeout 50 ms\)/, 'the error names its bound');
    t.equal(await codeOfAsync(blk.read(0, 1)), 'E_DEVICE_UNRESPONSIVE', 'new requests are refused until recover()');
    t.equal(sim.held, 0, 'the device was reset: it holds nothing');
    await blk.recover();
    t.equal(blk.device.phase, 'live', 'recover() makes it live again');
    const again = blk.write(3, new Uint8Array(512).fill(7));
    for (let i = 0; i < 50 && sim.held === 0; i++) await new Promise((r) => setImmediate(r));
    t.equal(sim.completeNow(), 1, 'the device sees the new request');
    await again;
    t.pass('and it completes');
  });

  t.test(`${mode}: close() with requests in flight and waiting rejects all of them with E_CLOSED`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual', queueMaxSize: 8 });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, depth: 4, queueSize: 8 });
    const pending = Array.from({ length: 10 }, (_, s) => blk.read(s, 1)); // 4 slots: 6 wait for one
    for (let i = 0; i < 50 && sim.held < 4; i++) await new Promise((r) => setImmediate(r));
    t.equal(sim.held, 4, 'four in flight, six waiting for a slot');
    await blk.close();
    const codes = await Promise.all(pending.map((p) => codeOfAsync(p)));
    t.same(new Set(codes), new Set(['E_CLOSED']), 'in flight and waiting alike are rejected with E_CLOSED');
    t.equal(await codeOfAsync(blk.read(0, 1)), 'E_CLOSED', 'the closed driver refuses new requests');
  });

  t.test(`${mode}: close(reason) rejects with the caller's reason`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual' });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts });
    const p = blk.read(0, 1);
    for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
    const { DeviceError } = await import('../../lib/errors.js');
    await blk.close(new DeviceError('E_STATE_REFUSED', 'the migration target refused the state'));
    t.equal(await codeOfAsync(p), 'E_STATE_REFUSED');
    const after = await blk.read(0, 1).then(() => null, (e: Error) => e);
    t.equal((after as { code?: string } | null)?.code, 'E_CLOSED', 'a request after close is refused as closed, not with the reason');
    t.match(after?.message ?? '', /the driver is closed/, 'and says it was never submitted');
  });
}

t.test('requestTimeoutMs is checked', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  // One transport: a refused open leaves it open for the next (a second transport over the function is refused).
  const transport = new VirtioPciTransport(sim.fn);
  t.teardown(() => transport.close());
  for (const bad of [0, -1, 1.5, 4_000_000]) {
    t.equal(await codeOfAsync(BlkDriver.open(transport, { requestTimeoutMs: bad })), 'E_INVALID_ARGUMENT', `requestTimeoutMs ${bad}`);
  }
});

t.test('a device that fails and whose reset after the failure throws: every request still settles, close() ends', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual', queueMaxSize: 8 });
  const transport = new VirtioPciTransport(sim.fn);
  const blk = await BlkDriver.open(transport, { depth: 4, queueSize: 8, requestTimeoutMs: 50 });
  const pending = Array.from({ length: 6 }, (_, s) => blk.read(s, 1)); // 4 in flight, 2 waiting
  for (let i = 0; i < 50 && sim.held < 4; i++) await new Promise((r) => setImmediate(r));
  t.equal(sim.held, 4, 'four in flight');
  // The reset after the failure throws past its own guard (say, a transport that vanished under it).
  blk.device.resetAfterFailure = () => Promise.reject(new Error('reset: the device is gone'));
  const started = Date.now();
  const codes = await Promise.all(pending.map((p) => codeOfAsync(p)));
  t.same(new Set(codes), new Set(['E_DEVICE_UNRESPONSIVE']), 'in flight and waiting alike are rejected with the failure');
  t.ok(Date.now() - started < 5000, 'within the bound');
  await Promise.race([blk.close().catch(() => undefined), new Promise((_, r) => setTimeout(() => r(new Error('close() hung')), 5000))]);
  t.pass('close() ends');
});

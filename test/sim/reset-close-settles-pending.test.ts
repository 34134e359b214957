// The kind of fault behind fail-reset-close-settles-read and reset-of-stopped-device-settles-held-read:
// device.reset() hands the chains it took back to the driver's QueueSet through onClose, and the
// QueueSet dropped them when its own close() had begun (it counted on the device's close() to
// return them, but the reset had already forgotten the queues). Every order of reset() and the
// driver's close() settles a request in flight, live or stopped, with or without a failure first.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

async function openWithRead(stateful: boolean) {
  const sim = createSimDevice({ type: 'blk', mode: 'hold', completion: 'manual', ...(stateful ? { state: { ringState: true, deviceState: true } } : {}) });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  const read = settledCode(blk.read(0, 8), 5000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  return { sim, blk, read };
}

t.test('a live device: reset() and close() in a row settle the read E_CLOSED', async (t) => {
  const { sim, blk, read } = await openWithRead(false);
  t.equal(sim.held, 1, 'the read is on the device');
  const reset = settledCode(blk.device.reset(), 5000);
  const close = settledCode(blk.close(), 5000);
  t.equal(await reset, 'ok', 'reset() resolves');
  t.equal(await close, 'ok', 'close() resolves');
  t.equal(await read, 'E_CLOSED', 'the read settles');
});

t.test('a live device: close() and reset() in a row settle the read E_CLOSED', async (t) => {
  const { sim, blk, read } = await openWithRead(false);
  t.equal(sim.held, 1, 'the read is on the device');
  const close = settledCode(blk.close(), 5000);
  const reset = settledCode(blk.device.reset(), 5000);
  t.equal(await reset, 'ok', 'reset() resolves');
  t.equal(await close, 'ok', 'close() resolves');
  t.equal(await read, 'E_CLOSED', 'the read settles');
});

t.test('a device stopped by ring-state (hold): reset() alone settles the held read E_CLOSED', async (t) => {
  const { sim, blk, read } = await openWithRead(true);
  t.equal(sim.held, 1, 'the read is on the device');
  t.equal(await settledCode(blk.stop({ mechanism: 'ring-state' }), 5000), 'ok', 'the device stopped');
  t.equal(await settledCode(blk.device.reset(), 5000), 'ok', 'reset() resolves');
  t.equal(await read, 'E_CLOSED', 'the read settles');
  t.equal(await settledCode(blk.close(), 5000), 'ok', 'close() resolves');
});

t.test('a device stopped by ring-state (hold): close() and reset() in a row', async (t) => {
  const { sim, blk, read } = await openWithRead(true);
  t.equal(sim.held, 1, 'the read is on the device');
  t.equal(await settledCode(blk.stop({ mechanism: 'ring-state' }), 5000), 'ok', 'the device stopped');
  const close = settledCode(blk.close(), 5000);
  const reset = settledCode(blk.device.reset(), 5000);
  t.equal(await reset, 'ok', 'reset() resolves');
  t.equal(await close, 'ok', 'close() resolves');
  t.equal(await read, 'E_CLOSED', 'the read settles');
});

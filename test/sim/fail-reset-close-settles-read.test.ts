// A blk read in flight, then device.fail(), device.reset() and the driver's close() called one
// after the other (a caller giving up on a device and tearing it down): each call resolves, but the
// read never settles — not E_DEVICE_FAILED (fail), nor E_CLOSED (reset, close). Each pair alone
// settles it (fail+reset: E_CLOSED, fail+close: E_CLOSED; fail alone: E_DEVICE_FAILED). The same
// with a failure the device raised (DEVICE_NEEDS_RESET), then reset() and close(). What should
// happen: every request the SDK accepted settles exactly once, here with E_DEVICE_FAILED or E_CLOSED.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('a read in flight settles after fail(), reset() and close() in a row', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  const read = settledCode(blk.read(0, 8), 5000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.equal(sim.held, 1, 'the read is on the device');
  blk.device.fail();
  const reset = settledCode(blk.device.reset(), 5000);
  const close = settledCode(blk.close(), 5000);
  t.equal(await reset, 'ok', 'reset() resolves');
  t.equal(await close, 'ok', 'close() resolves');
  t.match(await read, /^(E_DEVICE_FAILED|E_CLOSED)$/, 'the read settles (not HANG)');
});

t.test('the same with a failure the device raised: DEVICE_NEEDS_RESET, then reset() and close()', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  const read = settledCode(blk.read(0, 8), 5000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.equal(sim.held, 1, 'the read is on the device');
  sim.injectFault({ kind: 'needs-reset' });
  const reset = settledCode(blk.device.reset(), 5000);
  const close = settledCode(blk.close(), 5000);
  t.equal(await reset, 'ok', 'reset() resolves');
  t.equal(await close, 'ok', 'close() resolves');
  t.match(await read, /^(E_DEVICE_NEEDS_RESET|E_CLOSED)$/, 'the read settles (not HANG)');
});

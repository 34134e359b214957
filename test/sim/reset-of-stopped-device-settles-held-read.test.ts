// device.reset() settles what was pending (README: rejected E_CLOSED "in flight or waiting for
// room") — but not a request held by a stop: a blk read in flight when the device stopped (ring-
// state, the device holding the request) is never settled by reset(), nor by the driver's close()
// after it, which both resolve. What should happen: reset() of a stopped device rejects the
// requests the stop held with E_CLOSED, as it does for a live device's (fail() does: E_DEVICE_FAILED).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

for (const mode of ['hold', 'drain'] as const) {
  t.test(`ring-state stop (${mode}) with a read in flight, then reset() and close(): the read settles E_CLOSED`, async (t) => {
    const sim = createSimDevice({ type: 'blk', mode, completion: 'manual', state: { ringState: true, deviceState: true } });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
    const read = settledCode(blk.read(0, 8), 5000);
    for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
    t.equal(sim.held, 1, 'the read is on the device');
    // drain mode: the stop waits for the device to finish what it fetched; complete it meanwhile
    // only for 'drain' — in 'hold' the request stays with the stopped device.
    const stop = settledCode(blk.stop({ mechanism: 'ring-state' }), 5000);
    if (mode === 'drain') {
      await turns(5);
      t.comment(`completed ${sim.completeNow()}`);
    }
    t.equal(await stop, 'ok', 'the device stopped');
    const reset = settledCode(blk.device.reset(), 5000);
    const close = settledCode(blk.close(), 5000);
    t.equal(await reset, 'ok', 'reset() resolves');
    t.equal(await close, 'ok', 'close() resolves');
    t.match(await read, mode === 'hold' ? 'E_CLOSED' : /^(ok|E_CLOSED)$/, 'the read settles');
  });
}

// VirtioDevice.driverOk() is not one of the exclusive operations and does not look at the phase
// after its wait (the transport's flush: vhost-user and vhost-vdpa have one): a close() while it
// waits resolves — the device reset, its rings freed — and then driverOk() resolves too and sets the
// device 'live'. A closed device reports itself live: phase 'live', and a stop() on it is accepted
// past the E_CLOSED check. What should happen: driverOk() ends with E_CLOSED at its next step (as
// stop, reinit, resume and recover do, README "close() during any of them"), and the phase stays
// 'closed'.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { settledCode } from '../support/codes.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('close() while driverOk() waits for the transport leaves the device closed, driverOk() rejects E_CLOSED', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const base = new VirtioPciTransport(sim.fn);
  // The reference device's transport with a flush that waits (as a vhost back-end's reply does).
  let release = (): void => {};
  let hold = false;
  const slow = Object.create(base) as VirtioPciTransport & { flush(ms: number): Promise<void> };
  slow.flush = () => (hold ? new Promise<void>((r) => (release = r)) : Promise.resolve());
  const dev = await VirtioDevice.open(slow, {});
  dev.setupQueue(0, { size: 16 });
  hold = true;
  const ok = settledCode(dev.driverOk(), 3000);
  const closed = settledCode(dev.close(), 3000);
  await turns(10);
  release();
  t.equal(await closed, 'ok', 'close() resolves');
  t.equal(await ok, 'E_CLOSED', 'driverOk() ends with E_CLOSED');
  t.equal(dev.phase, 'closed', 'the device stays closed');
  base.close();
});

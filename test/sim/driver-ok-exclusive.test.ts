// driverOk() is one of the device's exclusive operations (with stop, reinit, resume, recover and
// reset): while one waits for the transport's flush (vhost-user and vhost-vdpa have one), a second
// driverOk() and a fail() are refused E_BAD_STATE and write nothing to the device; the first one
// goes on and makes the device live.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { Status } from '../../lib/spec/index.js';
import { settledCode } from '../support/codes.js';

t.test('a second driverOk() and a fail() while driverOk() waits on the flush are refused E_BAD_STATE', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const base = new VirtioPciTransport(sim.fn);
  let release = (): void => {};
  let hold = false;
  const slow = Object.create(base) as VirtioPciTransport & { flush(ms: number): Promise<void> };
  slow.flush = () => (hold ? new Promise<void>((r) => (release = r)) : Promise.resolve());
  const dev = await VirtioDevice.open(slow, {});
  dev.setupQueue(0, { size: 16 });
  hold = true;
  const first = settledCode(dev.driverOk(), 3000);
  hold = false;
  t.equal(await settledCode(dev.driverOk(), 3000), 'E_BAD_STATE', 'a second driverOk() is refused');
  let failCode = 'ok';
  try {
    dev.fail();
  } catch (e) {
    failCode = (e as { code: string }).code;
  }
  t.equal(failCode, 'E_BAD_STATE', 'fail() is refused');
  t.equal(base.readStatus() & Status.FAILED, 0, 'FAILED was not written');
  release();
  t.equal(await first, 'ok', 'the first driverOk() goes on');
  t.equal(dev.phase, 'live', 'the device is live');
  await dev.close();
});

// VirtioDevice.driverOk() is not one of the exclusive operations: called while a reset() of the
// same device runs, it wrote DRIVER_OK into the status of a device reset() had just reset (status
// 0: no ACKNOWLEDGE, DRIVER, FEATURES_OK — virtio 1.2 §3.1.1), the reference device recorded a
// driver MUST broken, and driverOk() resolved as if the device were live; after the reset the
// transport it let go of is left showing DRIVER_OK. What should happen: driverOk() during a reset()
// is refused E_BAD_STATE (as fail() is), nothing is written to the device, and no violation.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { settledCode } from '../support/codes.js';

t.test('driverOk() while reset() runs is refused E_BAD_STATE and writes nothing to the device', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  const dev = await VirtioDevice.open(transport, {});
  dev.setupQueue(0, { size: 16 });
  const before = sim.violations.length;
  const reset = dev.reset();
  const ok = settledCode(dev.driverOk(), 3000);
  t.equal(await ok, 'E_BAD_STATE', 'driverOk() during reset() is refused');
  await reset;
  t.same(sim.violations.slice(before).map((v) => `${v.id}: ${v.message}`), [], 'the device saw no driver MUST broken');
  t.equal(transport.readStatus(), 0, 'the transport reset() let go of shows status 0, not DRIVER_OK');
  t.equal(dev.phase, 'reset', 'the device is let go of');
  transport.close();
});

t.test('reset() while driverOk() waits for its flush leaves the device let go of, never live', async (t) => {
  // A transport whose flush takes a while (vhost-user and vhost-vdpa flush before DRIVER_OK counts).
  const sim = createSimDevice({ type: 'blk' });
  const base = new VirtioPciTransport(sim.fn);
  let release: () => void = () => {};
  let hold = false;
  const slow = Object.create(base) as VirtioPciTransport & { flush(ms: number): Promise<void> };
  slow.flush = () => (hold ? new Promise<void>((r) => { release = r; }) : Promise.resolve());
  const dev = await VirtioDevice.open(slow, {});
  dev.setupQueue(0, { size: 16 });
  hold = true;
  const ok = settledCode(dev.driverOk(), 3000);
  const reset = settledCode(dev.reset(), 3000);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  release();
  const [okCode, resetCode] = [await ok, await reset];
  t.not(okCode === 'ok' && resetCode === 'ok' && dev.phase === 'live', true, `driverOk ${okCode}, reset ${resetCode}: not both done with the device live`);
  t.not(dev.phase, 'live', 'a device whose reset() resolved is not live on the transport it let go of');
  base.close();
});

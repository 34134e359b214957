// A VirtioDevice let go with reset() kept its listeners on the transport it let go of: the
// transport's loss listener (onLost) and its interrupt handler. So the reset device went on
// hearing about a transport another VirtioDevice may drive now — a later close of that transport
// set the old device's `failure` — and a program that opens and resets devices on one transport
// in a loop kept a listener per old device on the transport's list. After reset() the
// old device is done with the transport: it hears nothing from it, and holds nothing on it.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('a reset device hears nothing from the transport it let go of', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 64 });
  const transport = new VirtioPciTransport(sim.fn);
  t.teardown(() => transport.close());
  const old = await VirtioDevice.open(transport, { interrupts: 'msix' });
  old.setupQueue(0);
  await old.driverOk();
  let oldHeard = 0;
  old.onConfigChange(() => oldHeard++);
  sim.resize(128);
  await turns(20);
  t.equal(oldHeard, 1, 'while it drives the device it hears a configuration change');
  await old.reset();

  sim.resize(256);
  await turns(20);
  t.equal(oldHeard, 1, 'after reset(): no configuration change reaches it');

  const next = await VirtioDevice.open(transport, { interrupts: 'msix' });
  next.setupQueue(0);
  await next.driverOk();
  let nextHeard = 0;
  next.onConfigChange(() => nextHeard++);
  sim.resize(512);
  await turns(20);
  t.equal(nextHeard, 1, 'the next owner hears its configuration change');
  t.equal(oldHeard, 1, 'the reset device does not');
  await next.close({ keepTransport: true });

  transport.close();
  t.equal(old.failure, null, 'the transport closing later is not the reset device\'s failure');
});

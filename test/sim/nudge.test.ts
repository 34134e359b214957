// The watchdog's nudge: a device that missed an available-buffer notification (lost on the way,
// or asked for at a descriptor the driver had already passed — seen from QEMU 7.2's packed
// virtio-net transmit, bench/README.md) would leave its requests in flight until the request
// timeout failed it. The watchdog notifies a queue whose chains made no progress between two
// looks again (a spurious notification is always allowed), so the requests complete, nothing is
// failed, and BlkDriver.nudges counts it.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import type { PciFunction } from '../../lib/pci/function.js';

/** A virtio-pci transport whose first `lose` notifications of queue 0 never reach the device. */
class LossyNotifications extends VirtioPciTransport {
  lost = 0;
  constructor(fn: PciFunction, private readonly lose: number) {
    super(fn);
  }
  override notifier(q: number): () => void {
    const notify = super.notifier(q);
    return () => {
      if (q === 0 && this.lost < this.lose) this.lost++;
      else notify();
    };
  }
}

for (const layout of ['split', 'packed'] as const) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}: lost notifications are made up for by the watchdog, nothing fails`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 256 });
      const transport = new LossyNotifications(sim.fn, 3);
      const blk = await BlkDriver.open(transport, { layout, interrupts, requestTimeoutMs: 2000 });
      t.teardown(() => blk.close());
      const started = Date.now();
      const data = new Uint8Array(512).fill(0x5a);
      await blk.write(7, data);
      t.same(await blk.read(7, 1), data, 'the write and the read completed');
      const ms = Date.now() - started;
      t.ok(transport.lost >= 1, `notifications lost: ${transport.lost}`);
      t.ok(blk.nudges >= 1, `the watchdog notified again ${blk.nudges} time(s)`);
      t.equal(blk.device.phase, 'live', 'the device was not failed');
      t.ok(ms < 2000, `completed in ${ms} ms, before the 2000 ms request timeout`);
    });
  }
}

t.test('an idle device is not nudged; a busy one that answers is not either', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 256 });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { requestTimeoutMs: 400 });
  t.teardown(() => blk.close());
  for (let i = 0; i < 50; i++) await blk.read(i, 1);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(blk.nudges, 0);
});

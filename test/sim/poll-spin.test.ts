// OpenOptions.pollSpinUs and the blk driver's shared notification: what a user relies on — the
// option is checked before the device is touched; its default spins on a device elsewhere and not
// on the reference device (which runs on the driver's thread and can finish nothing during a
// spin); polling with a spin completes every request; readers that resubmit from their completions
// share one notification per batch instead of one each (virtio 1.2 §2.7.13.4: one notification
// may cover many chains).

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { DEFAULT_POLL_SPIN_US } from '../../lib/virtio/device.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { codeOfAsync } from '../support/codes.js';

t.test('pollSpinUs: out of range or not an integer is refused', async (t) => {
  for (const bad of [-1, 1.5, 10_001, Number.NaN]) {
    const dev = createSimDevice({ type: 'blk', capacitySectors: 64 });
    t.equal(await codeOfAsync(BlkDriver.open(new VirtioPciTransport(dev.fn), { pollSpinUs: bad })), 'E_INVALID_ARGUMENT', String(bad));
  }
});

t.test('pollSpinUs defaults: 0 on the reference device, DEFAULT_POLL_SPIN_US on a device off the driver thread', async (t) => {
  const local = createSimDevice({ type: 'blk', capacitySectors: 64 });
  const a = await BlkDriver.open(new VirtioPciTransport(local.fn), { interrupts: 'poll' });
  t.teardown(() => a.close());
  t.equal(a.device.pollSpinUs, 0, 'the reference device: no spin');
  const elsewhere = createSimDevice({ type: 'blk', capacitySectors: 64 });
  Object.defineProperty(elsewhere.fn, 'deviceOnDriverThread', { value: false });
  const b = await BlkDriver.open(new VirtioPciTransport(elsewhere.fn), { interrupts: 'poll' });
  t.teardown(() => b.close());
  t.equal(b.device.pollSpinUs, DEFAULT_POLL_SPIN_US, 'a device elsewhere: the default spin');
  const c = await BlkDriver.open(new VirtioPciTransport(createSimDevice({ type: 'blk', capacitySectors: 64 }).fn), { interrupts: 'poll', pollSpinUs: 300 });
  t.teardown(() => c.close());
  t.equal(c.device.pollSpinUs, 300, 'an explicit value is kept');
});

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: polling with a spin completes every request, also with device latency`, async (t) => {
    const dev = createSimDevice({ type: 'blk', capacitySectors: 4096, completion: { latencyMs: 1 } });
    const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), { layout, interrupts: 'poll', pollSpinUs: 200 });
    t.teardown(() => blk.close());
    const data = new Uint8Array(4096).map((_, i) => (i * 13) & 0xff);
    await blk.write(8, data);
    const reads = await Promise.all(Array.from({ length: 16 }, () => blk.read(8, 8)));
    for (const r of reads) t.same(r, data);
    t.equal(blk.device.interruptMode, 'poll');
  });

  t.test(`${layout}: 32 readers that resubmit from their completions share notifications`, async (t) => {
    const dev = createSimDevice({ type: 'blk', capacitySectors: 4096 });
    const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), { layout, depth: 32, eventIdx: false });
    t.teardown(() => blk.close());
    const before = dev.fn.device.stats.notifications[0]!;
    let done = 0;
    await Promise.all(Array.from({ length: 32 }, async (_, r) => {
      for (let i = 0; i < 20; i++) {
        await blk.read((r * 20 + i) % 4096, 1);
        done++;
      }
    }));
    const notifications = dev.fn.device.stats.notifications[0]! - before;
    t.equal(done, 640);
    t.ok(notifications <= done / 8, `${notifications} notifications for ${done} reads (one per batch, not one per read; EVENT_IDX off)`);
  });
}

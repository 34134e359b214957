// OpenOptions.pollBudget as a user meets it: the option is checked before the device is touched;
// by default a device off the driver's thread takes half of what is in flight per polling turn
// and the reference device (on the driver's thread, where nothing overlaps) takes all; with any
// budget, closed-loop readers at QD32 get every read back with the right data, on both layouts,
// with polling, with poll-then-sleep, and with interrupts alone (an interrupt takes a budget too).

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import type { PollBudget } from '../../lib/virtio/busy-poll.js';
import { codeOfAsync } from '../support/codes.js';

t.test('pollBudget: not half, not an integer, or out of range is refused', async (t) => {
  for (const bad of [-1, 1.5, 65_537, Number.NaN, 'all', '8']) {
    const dev = createSimDevice({ type: 'blk', capacitySectors: 64 });
    t.equal(await codeOfAsync(BlkDriver.open(new VirtioPciTransport(dev.fn), { pollBudget: bad as unknown as PollBudget })), 'E_INVALID_ARGUMENT', String(bad));
    t.equal(dev.fn.device.common.status, 0, `${String(bad)}: the device was not touched`);
  }
});

t.test("pollBudget defaults: 0 on the reference device, 'half' on a device off the driver thread; an explicit value is kept", async (t) => {
  const a = await BlkDriver.open(new VirtioPciTransport(createSimDevice({ type: 'blk', capacitySectors: 64 }).fn), { interrupts: 'poll' });
  t.teardown(() => a.close());
  t.equal(a.device.pollBudget, 0);
  const elsewhere = createSimDevice({ type: 'blk', capacitySectors: 64 });
  Object.defineProperty(elsewhere.fn, 'deviceOnDriverThread', { value: false });
  const b = await BlkDriver.open(new VirtioPciTransport(elsewhere.fn), { interrupts: 'poll' });
  t.teardown(() => b.close());
  t.equal(b.device.pollBudget, 'half');
  const c = await BlkDriver.open(new VirtioPciTransport(createSimDevice({ type: 'blk', capacitySectors: 64 }).fn), { interrupts: 'poll', pollBudget: 4 });
  t.teardown(() => c.close());
  t.equal(c.device.pollBudget, 4);
});

for (const layout of ['split', 'packed'] as const) {
  for (const [mode, budget] of [['poll', 'half'], ['poll', 1], ['hybrid', 'half'], ['hybrid', 3], ['msix', 'half'], ['msix', 2]] as ['poll' | 'hybrid' | 'msix', PollBudget][]) {
    t.test(`${layout}, ${mode}, budget ${budget}: 32 closed-loop readers get every read back, right data`, async (t) => {
      const dev = createSimDevice({ type: 'blk', capacitySectors: 4096, completion: { latencyMs: 1 } });
      Object.defineProperty(dev.fn, 'deviceOnDriverThread', { value: false });
      const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), {
        layout, depth: 32, pollBudget: budget, interrupts: mode === 'poll' ? 'poll' : 'auto', hybridPollUs: mode === 'hybrid' ? 2000 : 0, pollSpinUs: 0,
      });
      t.teardown(() => blk.close());
      t.equal(blk.device.interruptMode, mode === 'poll' ? 'poll' : 'msix');
      for (let s = 0; s < 64; s++) await blk.write(s, new Uint8Array(512).fill(s + 1));
      let done = 0;
      let wrong = 0;
      await Promise.all(Array.from({ length: 32 }, async (_, r) => {
        for (let i = 0; i < 10; i++) {
          const sector = (r * 10 + i) % 64;
          const got = await blk.read(sector, 1);
          if (got.some((b) => b !== sector + 1)) wrong++;
          done++;
        }
      }));
      t.equal(done, 320, 'every read came back');
      t.equal(wrong, 0, 'with its own data');
    });
  }
}

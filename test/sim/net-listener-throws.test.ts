// A frame listener that throws (a careless user's onFrame callback) must not take the process down,
// cost a receive buffer, or stop delivery: the exception is reported (a process warning,
// E_CALLBACK_THREW), the buffer is posted again and later frames reach every listener.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver, type ReceivedFrame } from '../../drivers/net/index.js';

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
}

for (const layout of ['split', 'packed'] as const) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}: a throwing frame listener costs no buffer and stops nothing`, async (t) => {
      const dev = createSimDevice({ type: 'net' });
      // 4 receive buffers: a buffer lost per throw would stall the fifth frame.
      const net = await NetDriver.open(new VirtioPciTransport(dev.fn), { layout, interrupts, rxBuffers: 4 });
      t.teardown(() => net.close());
      const warnings: Error[] = [];
      const onWarning = (w: Error): void => { warnings.push(w); };
      process.on('warning', onWarning);
      t.teardown(() => { process.off('warning', onWarning); });
      const got: ReceivedFrame[] = [];
      net.onFrame(() => { throw new Error('listener bug'); });
      net.onFrame((f) => got.push(f));
      const frames = Array.from({ length: 12 }, (_, n) => Uint8Array.from({ length: 60 }, (_, i) => (n * 7 + i) & 0xff));
      for (const f of frames) await net.send(f);
      await until(() => got.length >= frames.length && warnings.length >= frames.length);
      t.equal(got.length, frames.length, 'every frame reached the listener after the one that throws');
      t.same(got.map((f) => f.frame[0]), frames.map((f) => f[0]), 'in order');
      t.equal(warnings.length, frames.length, 'one warning per throw');
      t.match(warnings[0], { code: 'E_CALLBACK_THREW', message: /listener bug/ });
      t.equal(net.device.phase, 'live', 'the device stays live');
    });
  }
}

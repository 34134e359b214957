// RequestQueue.submitCb on a device (the reference blk device through BlkDriver's queue): callbacks
// complete with what the device wrote, and every pending callback is called exactly once with the
// typed error when the driver is closed or the device stops answering — MSI-X and polling.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { readChain } from '../support/blk-chain.js';


const settleTurns = async (done: () => boolean): Promise<void> => {
  for (let i = 0; i < 2000 && !done(); i++) await new Promise((r) => setImmediate(r));
};

for (const interrupts of ['auto', 'poll'] as const) {
  for (const layout of ['split', 'packed'] as const) {
    const mode = `${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}`;

    t.test(`${mode}: submitCb completes with the device's length; the status byte is written`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts });
      t.teardown(() => blk.close());
      const calls: [Error | null, number, number][] = [];
      const chains = [0, 8, 16].map((s) => readChain(blk, s));
      chains.forEach((c, i) => blk.requests.submitCb(c.readable, c.writable, undefined, (e, len) => calls.push([e, len, i])));
      await settleTurns(() => calls.length === 3);
      t.same(calls.map((c) => c[0]), [null, null, null]);
      t.same(calls.map((c) => c[1]), [4097, 4097, 4097], 'the data and the status byte');
      t.same(calls.map((c) => c[2]).sort(), [0, 1, 2], 'each once');
      t.same(chains.map((c) => c.status()), [0, 0, 0], 'VIRTIO_BLK_S_OK');
    });

    t.test(`${mode}: close() with callbacks pending calls each exactly once with E_CLOSED`, async (t) => {
      const sim = createSimDevice({ type: 'blk', completion: 'manual', capacitySectors: 4096, queueMaxSize: 4 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, queueSize: 4 });
      const calls: [string | undefined, number][] = [];
      // A 4-entry ring: some are in flight, the others wait for room.
      for (let i = 0; i < 6; i++) {
        const c = readChain(blk, i * 8);
        blk.requests.submitCb(c.readable, c.writable, undefined, (e) => calls.push([(e as { code?: string } | null)?.code, i]));
      }
      await settleTurns(() => sim.held > 0);
      t.equal(blk.requests.pending, 6);
      t.ok(sim.held > 0 && sim.held < 6, `${sim.held} in flight, the others waiting for room`);
      await blk.close();
      await settleTurns(() => calls.length === 6);
      t.same(calls.map((c) => c[0]), Array(6).fill('E_CLOSED'));
      t.same(calls.map((c) => c[1]).sort(), [0, 1, 2, 3, 4, 5], 'each exactly once');
      await new Promise((r) => setTimeout(r, 20));
      t.equal(calls.length, 6, 'and never again');
    });

    t.test(`${mode}: a device that stops answering: each pending callback once with E_DEVICE_UNRESPONSIVE`, async (t) => {
      const sim = createSimDevice({ type: 'blk', completion: 'manual', capacitySectors: 4096 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, requestTimeoutMs: 50 });
      t.teardown(() => blk.close());
      const calls: (string | undefined)[] = [];
      for (let i = 0; i < 3; i++) {
        const c = readChain(blk, i * 8);
        blk.requests.submitCb(c.readable, c.writable, undefined, (e) => calls.push((e as { code?: string } | null)?.code));
      }
      const started = Date.now();
      while (calls.length < 3 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 5));
      t.same(calls, Array(3).fill('E_DEVICE_UNRESPONSIVE'), 'bounded by the request timeout');
      const late: (string | undefined)[] = [];
      const c = readChain(blk, 0);
      blk.requests.submitCb(c.readable, c.writable, undefined, (e) => late.push((e as { code?: string } | null)?.code));
      t.same(late, [], 'a refusal is never delivered from inside submitCb');
      await settleTurns(() => late.length > 0);
      t.same(late, ['E_DEVICE_UNRESPONSIVE'], 'a failed device refuses new callbacks with its error');
    });
  }
}

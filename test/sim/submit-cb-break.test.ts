// submitCb on the reference blk device under the things a driver does in the same tick as a
// submit (kickNow false, then close, or stop → snapshot → reinit), from inside a callback (close),
// and under a device that breaks its used ring with callback and promise requests mixed: every
// request settles exactly once, and nothing throws out of the event loop.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { readChain } from '../support/blk-chain.js';


const code = (e: Error | null): string | null => (e ? (e as { code?: string }).code ?? `untyped ${e.name}` : null);

async function until(done: () => boolean, ms = 5000): Promise<void> {
  const started = Date.now();
  while (!done() && Date.now() - started < ms) await new Promise((r) => setTimeout(r, 2));
}

for (const interrupts of ['auto', 'poll'] as const) {
  for (const layout of ['split', 'packed'] as const) {
    const mode = `${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}`;

    t.test(`${mode}: kickNow false, then close() in the same tick: each callback exactly once`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, queueMaxSize: 4 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, queueSize: 4 });
      const calls: [string | null, number][] = [];
      for (let i = 0; i < 6; i++) {
        const c = readChain(blk, i * 8);
        blk.requests.submitCb(c.readable, c.writable, undefined, (e) => calls.push([code(e), i]), false);
      }
      const closing = blk.close();
      await closing;
      await until(() => calls.length >= 6);
      await new Promise((r) => setTimeout(r, 20));
      t.same(calls.map((c) => c[1]).sort(), [0, 1, 2, 3, 4, 5], 'each exactly once');
      t.ok(calls.every((c) => c[0] === null || c[0] === 'E_CLOSED'), `done or E_CLOSED: ${JSON.stringify(calls)}`);
    });

    t.test(`${mode}: kickNow false, then stop → snapshot → reinit: the callbacks carry over and complete once`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, queueMaxSize: 4 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, queueSize: 4 });
      t.teardown(() => blk.close());
      const calls: [string | null, number, number][] = [];
      const chains = [0, 1, 2, 3, 4, 5].map((i) => readChain(blk, i * 8));
      chains.forEach((c, i) => blk.requests.submitCb(c.readable, c.writable, undefined, (e, len) => calls.push([code(e), len, i]), false));
      await blk.stop();
      const snapshot = blk.snapshot();
      await blk.reinit(snapshot);
      await until(() => calls.length >= 6);
      await new Promise((r) => setTimeout(r, 20));
      t.same(calls.map((c) => c[2]).sort(), [0, 1, 2, 3, 4, 5], 'each exactly once');
      t.same(calls.map((c) => c[0]), Array(6).fill(null), 'all completed');
      t.same(chains.map((c) => c.status()), Array(6).fill(0), 'VIRTIO_BLK_S_OK');
    });

    t.test(`${mode}: a callback that closes the driver: every other pending request settles once`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, queueMaxSize: 4 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, queueSize: 4 });
      const calls: [string | null, number][] = [];
      let closing: Promise<void> | undefined;
      for (let i = 0; i < 6; i++) {
        const c = readChain(blk, i * 8);
        blk.requests.submitCb(c.readable, c.writable, undefined, (e) => {
          calls.push([code(e), i]);
          closing ??= blk.close();
        });
      }
      const promised = blk.read(64, 8).then(() => 'ok', (e: Error) => code(e));
      await until(() => calls.length >= 6);
      await closing;
      t.same(calls.map((c) => c[1]).sort(), [0, 1, 2, 3, 4, 5], 'each exactly once');
      t.ok(calls.every((c) => c[0] === null || c[0] === 'E_CLOSED'), `done or E_CLOSED: ${JSON.stringify(calls)}`);
      t.ok(['ok', 'E_CLOSED'].includes((await promised) as string), 'the promise request settled too');
    });

    t.test(`${mode}: a broken used ring with callback and promise requests mixed: each once, typed`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, queueMaxSize: 8 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, queueSize: 8 });
      t.teardown(() => blk.close());
      sim.injectFault({ kind: 'bad-used-id' });
      const calls: [string | null, number][] = [];
      const promises: Promise<string | null>[] = [];
      for (let i = 0; i < 6; i++) {
        const c = readChain(blk, i * 8);
        if (i % 2 === 0) blk.requests.submitCb(c.readable, c.writable, undefined, (e) => calls.push([code(e), i]), i % 4 === 0);
        else promises.push(blk.requests.submit(c.readable, c.writable).then(() => null, (e: Error) => code(e)));
      }
      await until(() => calls.length >= 3);
      const settled = await Promise.all(promises);
      await new Promise((r) => setTimeout(r, 20));
      t.same(calls.map((c) => c[1]).sort(), [0, 2, 4], 'each callback exactly once');
      for (const c of [...calls.map((c) => c[0]), ...settled]) t.not(c?.startsWith('untyped'), true, `typed: ${c}`);
      t.ok([...calls.map((c) => c[0]), ...settled].some((c) => c !== null), 'the fault reached some request');
    });

    t.test(`${mode}: QD1 reads under used-len-short and bad-blk-status: typed errors, then the next read works`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096 });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, queueSize: 4 });
      t.teardown(() => blk.close());
      for (const kind of ['used-len-short', 'bad-blk-status'] as const) {
        sim.injectFault({ kind });
        await t.rejects(blk.read(0, 8), { code: /^E_/ }, `${kind}: typed`);
        for (let i = 0; i < 20; i++) t.equal((await blk.read(i * 8, 8)).length, 4096);
        await t.resolves(blk.write(0, new Uint8Array(4096)), 'a write after it');
      }
    });
  }
}

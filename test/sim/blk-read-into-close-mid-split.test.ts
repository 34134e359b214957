// Breaker 27 (FAILS at 335d497): close() while a readInto longer than maxTransfer waits for a slot
// (depth 1): the promise settles E_CLOSED, but the piece already submitted rejects with nobody
// listening (RequestRunner.run stops at takeSome's rejection and never awaits done[]): an
// unhandledRejection, which ends a default Node process (read()/readMany/writeMany share run()).
import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { codeOfAsync, settledCode } from '../support/codes.js';
import { openBlkSim, type BlkSimOptions } from '../support/blk-sim.js';
import { unhandledRejections } from '../support/unhandled.js';

const bringUp = (t: { teardown(fn: () => unknown): void }, opts: BlkSimOptions = {}) => openBlkSim(t, { layout: 'split', ...opts });

t.test('close() with a split readInto in flight (depth 1): settles typed, no unhandled rejection', async (t) => {
  const unhandled = unhandledRejections(t);
  const { blk } = await bringUp(t, { latencyMs: 20, depth: 1 });
  const target = new Uint8Array(64 * 1024);
  const p = blk.readInto(0, 128, target);
  const single = blk.readInto(0, 8, new Uint8Array(4096));
  await new Promise((r) => setTimeout(r, 5));
  await blk.close();
  t.equal(await settledCode(p, 3000), 'E_CLOSED', 'the split read');
  t.equal(await settledCode(single, 3000), 'E_CLOSED', 'the waiting single read');
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target)), 'E_CLOSED', 'after close');
  await new Promise((r) => setTimeout(r, 100));
  t.same(unhandled.map(String), [], 'no unhandled rejection');
});

t.test('stop(), then close() with a split readInto in flight (depth 1): no unhandled rejection', async (t) => {
  const unhandled = unhandledRejections(t);
  const { blk } = await bringUp(t, { ringState: true, latencyMs: 3, depth: 1 });
  const target = new Uint8Array(64 * 1024);
  const p = blk.readInto(0, 128, target);
  await new Promise((r) => setTimeout(r, 4));
  await blk.stop();
  await blk.close();
  t.equal(await settledCode(p, 3000), 'E_CLOSED', 'the split read settles typed');
  await new Promise((r) => setTimeout(r, 100));
  t.same(unhandled.map(String), [], 'no unhandled rejection');
});

t.test('default options (depth 32, maxTransfer 64 KiB): close() during a 4 MiB readInto: no unhandled rejection', async (t) => {
  const unhandled = unhandledRejections(t);
  const sim = createSimDevice({ type: 'blk', capacitySectors: 16384, completion: { latencyMs: 20 } });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  const p = blk.readInto(0, 8192, new Uint8Array(4 << 20)); // 64 requests: 32 in flight, 32 waiting for a slot
  await new Promise((r) => setTimeout(r, 5));
  await blk.close();
  t.equal(await settledCode(p, 3000), 'E_CLOSED', 'the read settles typed');
  await new Promise((r) => setTimeout(r, 100));
  t.same(unhandled.map(String), [], 'no unhandled rejection (a default Node process would have exited with code 1)');
});

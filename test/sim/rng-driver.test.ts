// RngDriver (drivers/rng/) on the reference virtio-rng (lib/sim/models/rng.ts, sim:rng): the
// worked example of "a device type = a driver + a model + one registration line each".

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { RngDriver, RNG_MAX_READ_BYTES } from '../../drivers/rng/index.js';
import { codeOfAsync } from '../support/codes.js';

/** The reference device's seeded stream (xorshift32, one byte per step), written out independently. */
function seededStream(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

t.test('sim:rng?seed=N through openTransport: the bytes are the seeded stream, in order, across requests', async (t) => {
  const opened = await openTransport('sim:rng?seed=7');
  const rng = await RngDriver.open(opened.transport);
  t.teardown(() => rng.close());
  const first = await rng.read(10_000); // more than one 4096-byte buffer: three requests
  const second = await rng.read(5);
  t.same([...first, ...second], [...seededStream(7, 10_005)]);
  t.equal(opened.sim?.type, 'rng');
  t.equal(opened.sim?.stats.completed[0], 4, 'one request per buffer: 4096 + 4096 + 1808, then 5');
  t.equal(opened.sim?.type === 'rng' ? opened.sim.delivered : -1, 10_005, 'the device handed out exactly what was read');
  t.same(opened.sim?.violations, [], 'the driver broke no device rule');
});

t.test('without a seed: random bytes, and two devices do not agree', async (t) => {
  const a = await RngDriver.open(new VirtioPciTransport(createSimDevice({ type: 'rng' }).fn));
  const b = await RngDriver.open(new VirtioPciTransport(createSimDevice({ type: 'rng' }).fn));
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const x = await a.read(4096);
  t.ok(new Set(x).size > 200, 'bytes spread over the range');
  t.notSame([...x], [...await b.read(4096)]);
});

t.test('refusals: a byte count that is not positive, a device that is not rng, a read after close', async (t) => {
  const rng = await RngDriver.open(new VirtioPciTransport(createSimDevice({ type: 'rng', seed: 1 }).fn));
  for (const n of [0, -1, 1.5, NaN, 2 ** 53, 1e9, RNG_MAX_READ_BYTES + 1, '8' as unknown as number]) {
    t.equal(await codeOfAsync(() => rng.read(n)), 'E_INVALID_ARGUMENT', `read(${JSON.stringify(n)}) is refused before anything is allocated`);
  }
  await rng.close();
  t.equal(await codeOfAsync(() => rng.read(1)), 'E_CLOSED', 'read after close');
  t.equal(await codeOfAsync(() => RngDriver.open(new VirtioPciTransport(createSimDevice({ type: 'blk' }).fn))), 'E_NOT_VIRTIO');
});

t.test('polling delivery works the same', async (t) => {
  const rng = await RngDriver.open(new VirtioPciTransport(createSimDevice({ type: 'rng', seed: 99 }).fn), { interrupts: 'poll' });
  t.teardown(() => rng.close());
  t.same([...await rng.read(300)], [...seededStream(99, 300)]);
});

t.test('more reads at once than ring entries: each waits for a buffer of its own; every byte goes to one caller', async (t) => {
  const opened = await openTransport('sim:rng?seed=3');
  const rng = await RngDriver.open(opened.transport);
  t.teardown(() => rng.close());
  const results = await Promise.all(Array.from({ length: 150 }, () => rng.read(16)));
  const all = results.map((r) => Buffer.from(r).toString('hex'));
  t.equal(new Set(all).size, 150, 'no two callers got the same bytes');
  t.equal(opened.sim?.type === 'rng' ? opened.sim.delivered : -1, 150 * 16, 'the device handed out exactly what was read');
  t.same([...Buffer.from(all.join(''), 'hex')].sort(), [...seededStream(3, 150 * 16)].sort(), 'together, the seeded stream');
});

t.test('close() with reads waiting for a buffer: every read settles, E_CLOSED; a second close() is the same close', async (t) => {
  const rng = await RngDriver.open(new VirtioPciTransport(createSimDevice({ type: 'rng', completion: 'manual' }).fn));
  const reads = Array.from({ length: 100 }, () => codeOfAsync(rng.read(16)));
  await new Promise((r) => setTimeout(r, 10));
  await Promise.all([rng.close(), rng.close()]);
  const codes = await Promise.all(reads);
  t.same([...new Set(codes)], ['E_CLOSED'], 'in flight and waiting: E_CLOSED');
});

t.test('stop (quiesce) → resume, and stop → snapshot → reinit: reads go on', async (t) => {
  const opened = await openTransport('sim:rng?seed=5');
  const rng = await RngDriver.open(opened.transport);
  t.teardown(() => rng.close());
  const first = await rng.read(8);
  t.equal(await rng.stop(), 'quiesce');
  await rng.resume();
  const second = await rng.read(8);
  t.equal(await rng.stop(), 'quiesce');
  await rng.reinit(rng.snapshot());
  const third = await rng.read(8);
  t.same([...first, ...second, ...third], [...seededStream(5, 24)]);
});

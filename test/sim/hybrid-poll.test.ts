// Poll-then-sleep (OpenOptions.hybridPollUs): a queue with an interrupt vector polls its used ring
// after each kick, with notifications suppressed, until the window passes with nothing completed;
// then it waits for the interrupt again. What a user relies on: a fast device's completions are
// taken without interrupts; a device slower than the window still completes every request (by
// interrupt, with the §2.7.10 re-check, so none waits for the watchdog); stop/reinit and close with
// requests in flight behave as without it; bad values are refused.

import t from 'tap';
import { createSimDevice, type SimBlkOptions } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver, type BlkOpenOptions } from '../../drivers/blk/index.js';
import { codeOfAsync } from '../support/codes.js';

async function bringUp(t: { teardown(fn: () => unknown): void }, sim: Omit<SimBlkOptions, 'type'>, driver: BlkOpenOptions) {
  const dev = createSimDevice({ type: 'blk', capacitySectors: 4096, ...sim });
  const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), driver);
  t.teardown(() => blk.close());
  return { sim: dev, blk };
}

const N = 200;

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: a device that answers at once — hybrid takes the completions without interrupts; off, every one is interrupted`, async (t) => {
    const counts: Record<string, number> = {};
    for (const hybridPollUs of [0, 2000]) {
      const { sim, blk } = await bringUp(t, {}, { layout, hybridPollUs });
      t.equal(blk.device.interruptMode, 'msix');
      t.equal(blk.device.hybridPollUs, hybridPollUs);
      const before = sim.stats.interrupts[0]!;
      for (let i = 0; i < N; i++) await blk.read(i % 4096, 1);
      counts[hybridPollUs] = sim.stats.interrupts[0]! - before;
      t.equal(blk.missedInterrupts, 0, 'the watchdog never had to take a completion');
    }
    t.ok(counts[0]! >= N * 0.9, `interrupts only: ${counts[0]} interrupts for ${N} reads`);
    t.ok(counts[2000]! <= N * 0.1, `hybrid: ${counts[2000]} interrupts for ${N} reads`);
  });

  t.test(`${layout}: a device slower than the window — every request still completes, by interrupt`, async (t) => {
    const { sim, blk } = await bringUp(t, { completion: { latencyMs: 4 } }, { layout, hybridPollUs: 100 });
    const before = sim.stats.interrupts[0]!;
    const reads = await Promise.all(Array.from({ length: 16 }, (_, i) => blk.read(i * 8, 8)));
    t.equal(reads.length, 16);
    for (let i = 0; i < 10; i++) await blk.read(i, 1);
    t.ok(sim.stats.interrupts[0]! - before >= 10, `the interrupt took over after the window (${sim.stats.interrupts[0]! - before} interrupts)`);
    t.equal(blk.missedInterrupts, 0, 'no completion was left for the watchdog (the ring is re-checked when notifications are enabled again)');
  });

  t.test(`${layout}: stop / snapshot / reinit and close with requests in flight, hybrid on`, async (t) => {
    const { blk } = await bringUp(t, { state: { ringState: true }, completion: { latencyMs: 2 } }, { layout, hybridPollUs: 500 });
    const data = new Uint8Array(512 * 8).map((_, i) => i * 7);
    await blk.write(64, data);
    const inFlight = Array.from({ length: 8 }, () => blk.read(64, 8));
    t.equal(await blk.stop(), 'ring-state');
    await blk.reinit(blk.snapshot());
    for (const r of await Promise.all(inFlight)) t.same(r, data);
    const pending = blk.read(64, 8);
    await blk.close();
    const settled = await pending.then(() => 'resolved', (e: { code?: string }) => e.code);
    t.ok(settled === 'resolved' || settled === 'E_CLOSED', `a request pending at close settles (${settled})`);
  });
}

t.test('hybridPollUs: out of range or not an integer is refused before the device is touched', async (t) => {
  for (const bad of [-1, 1.5, 1_000_001, Number.NaN]) {
    const dev = createSimDevice({ type: 'blk', capacitySectors: 64 });
    t.equal(await codeOfAsync(BlkDriver.open(new VirtioPciTransport(dev.fn), { hybridPollUs: bad })), 'E_INVALID_ARGUMENT', String(bad));
  }
});

t.test('polling queues ignore the window (nothing to sleep on)', async (t) => {
  const { blk } = await bringUp(t, {}, { interrupts: 'poll', hybridPollUs: 500 });
  t.equal(blk.device.interruptMode, 'poll');
  for (let i = 0; i < 20; i++) await blk.read(i, 1);
  t.pass('reads complete by polling');
});

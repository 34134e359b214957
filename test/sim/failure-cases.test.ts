// The failing inputs of issue 10, exactly, on the reference device — each the first case of its kind
// (the fuzzer, test/fuzz, tries the rest):
//   - DEVICE_NEEDS_RESET with a read pending (completion 'manual'), in MSI-X and in polling mode;
//   - a reinit onto a target whose FEATURES_OK never sticks, or that refuses the DEVICE_STATE blob,
//     with requests in flight (hold and drain), then a fall-back reinit onto the source;
//   - a blk read completed with status OK and used.len = 1 (only the status byte written).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { rehearse } from '../../cli/rehearsal/engine.js';
import { createSimDevice, type SimBlkDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { DeviceStateRefusal } from '../../lib/spec/index.js';
import { codeOfAsync } from '../support/codes.js';

const MODES = [['split', 'auto'], ['split', 'poll'], ['packed', 'auto'], ['packed', 'poll']] as const;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function untilHeld(sim: SimBlkDevice, n: number): Promise<void> {
  for (let i = 0; i < 200 && sim.held < n; i++) await tick();
}

for (const [layout, interrupts] of MODES) {
  const mode = `${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}`;

  t.test(`${mode}: DEVICE_NEEDS_RESET with a read pending — the read and new reads reject with E_DEVICE_NEEDS_RESET; recover() brings the device back`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual' });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts });
    t.teardown(() => blk.close());
    const pending = blk.read(0, 1);
    await untilHeld(sim, 1);
    t.equal(sim.held, 1, 'the read is held in the device');
    sim.injectFault({ kind: 'needs-reset' }); // sets NEEDS_RESET and raises the configuration interrupt
    t.equal(await codeOfAsync(pending), 'E_DEVICE_NEEDS_RESET', 'the pending read is rejected');
    t.equal(await codeOfAsync(blk.read(1, 1)), 'E_DEVICE_NEEDS_RESET', 'a new read is refused');
    t.equal(blk.device.phase, 'needs-reset');
    t.equal(sim.held, 0, 'the device was reset: it holds nothing any more');
    await blk.recover();
    const again = blk.read(2, 1);
    await untilHeld(sim, 1);
    sim.completeNow();
    t.equal((await again).length, 512, 'after recover() reads work again');
  });

  t.test(`${mode}: a read completed with status OK and used.len = 1 is E_DEVICE_SHORT_USED_LEN, never the slot's old bytes`, async (t) => {
    const sim = createSimDevice({ type: 'blk' });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, depth: 1 });
    t.teardown(() => blk.close());
    await blk.write(0, new Uint8Array(512).fill(0xaa));
    t.same([...(await blk.read(0, 1)).subarray(0, 4)], [0xaa, 0xaa, 0xaa, 0xaa], 'a first read fills the one slot with 0xaa');
    await blk.write(1, new Uint8Array(512).fill(0x55));
    sim.injectFault({ kind: 'used-len-short', queue: 0 });
    t.equal(await codeOfAsync(blk.read(1, 1)), 'E_DEVICE_SHORT_USED_LEN', 'the short reply is refused (it would have returned the 0xaa left in the slot)');
    t.same([...(await blk.read(1, 1)).subarray(0, 4)], [0x55, 0x55, 0x55, 0x55], 'the next read is whole');
  });
}

for (const mode of ['hold', 'drain'] as const) {
  for (const refusal of ['features-refuse', 'device-state-refuse'] as const) {
    if (refusal === 'device-state-refuse' && mode === 'drain') continue; // drain holds nothing: no DEVICE_STATE to refuse
    t.test(`${mode}: a target that ${refusal === 'features-refuse' ? 'never keeps FEATURES_OK' : 'refuses the DEVICE_STATE blob'} — the reinit fails, a fall-back onto the source completes every request`, async (t) => {
      const options = { type: 'blk' as const, completion: { latencyMs: 2 }, state: { ringState: true }, mode };
      const src = createSimDevice(options);
      const dst = createSimDevice({ ...options, dma: src.dma, sharedDisk: src.disk });
      const source = new VirtioPciTransport(src.fn);
      const blk = await BlkDriver.open(source, { depth: 16 });
      t.teardown(() => blk.close());
      const writes = Array.from({ length: 12 }, (_, i) => blk.write(i, new Uint8Array(512).fill(i + 1)));
      await untilHeld(src, 4);
      await blk.stop();
      const queued = Array.from({ length: 4 }, (_, i) => blk.read(i, 1)); // wait behind the stop
      dst.injectFault(refusal === 'features-refuse' ? { kind: 'features-refuse' } : { kind: 'device-state-refuse', reason: DeviceStateRefusal.MISMATCH });
      const snap = blk.snapshot();
      if (mode === 'hold') t.ok(snap.deviceState, 'the device holds requests: the snapshot carries its state');
      const e = await blk.reinit(snap, { target: new VirtioPciTransport(dst.fn) }).then(() => null, (x: unknown) => x as { code: string; message: string });
      t.equal(e?.code, refusal === 'features-refuse' ? 'E_FEATURES_NOT_OK' : 'E_STATE_REFUSED', 'the target refuses');
      if (refusal === 'device-state-refuse') t.match(e?.message ?? '', /does not fit this device/, 'the error carries the device\'s reason');
      t.equal(blk.device.phase, 'stopped', 'the driver is still stopped: a retry is possible');
      await blk.reinit(snap, { target: source });
      await Promise.all(writes);
      const data = await Promise.all(queued);
      t.same(data.map((d) => d[0]), [1, 2, 3, 4], 'the writes in flight and the reads queued at the stop complete, once, on the source');
      t.equal(src.stats.completed[0], 16, 'the source carried out each request once');
      t.equal(dst.stats.completed[0], 0, 'the refusing target carried out none');
    });
  }
}

t.test('a refused target and a refused fall-back: every pending request is rejected with the cause', async (t) => {
  const options = { type: 'blk' as const, completion: { latencyMs: 2 }, state: { ringState: true }, mode: 'hold' as const };
  const src = createSimDevice(options);
  const dst = createSimDevice({ ...options, dma: src.dma, sharedDisk: src.disk });
  const blk = await BlkDriver.open(new VirtioPciTransport(src.fn), { depth: 16 });
  const writes = Array.from({ length: 8 }, (_, i) => blk.write(i, new Uint8Array(512).fill(i)));
  await untilHeld(src, 2);
  await blk.stop();
  const snap = blk.snapshot();
  dst.injectFault({ kind: 'features-refuse' });
  src.injectFault({ kind: 'features-refuse' });
  t.equal(await codeOfAsync(blk.reinit(snap, { target: new VirtioPciTransport(dst.fn) })), 'E_FEATURES_NOT_OK');
  const fallBack = await blk.reinit(snap).then(() => null, (e: unknown) => e as Error);
  t.equal((fallBack as { code?: string } | null)?.code, 'E_FEATURES_NOT_OK', 'the source refuses too');
  await blk.close(fallBack as never);
  const codes = await Promise.all(writes.map((w) => codeOfAsync(w)));
  t.ok(codes.every((c) => c === 'E_FEATURES_NOT_OK' || c === 'no error'), `each write completed or was rejected with the cause (${[...new Set(codes)].join(', ')})`);
  t.ok(codes.includes('E_FEATURES_NOT_OK'), 'those held at the stop were rejected with it');
});

t.test('rehearse --to a target that refuses: the source takes the rings back, nothing is lost, the refusal is reported', async (t) => {
  const r = await rehearse({
    device: 'sim:blk?state=ring-state&mode=hold&latency=1', to: 'sim:blk?state=ring-state&mode=hold&latency=1&fault=features-refuse',
    cycles: 3, inflight: 8, seed: 3, mechanism: 'ring-state', layout: 'auto', requestsPerCycle: 30,
  });
  t.equal(r.ok, false, 'the rehearsal is not OK');
  t.match(r.refused, { cycle: 1, target: /fault=features-refuse/, error: { code: 'E_FEATURES_NOT_OK' } }, 'the first migration was refused, with the target\'s code');
  t.same({ lost: r.requests.lost, duplicated: r.requests.duplicated, corrupted: r.requests.corrupted }, { lost: 0, duplicated: 0, corrupted: 0 }, 'nothing lost, done twice or corrupted');
  t.equal(r.requests.completed, r.requests.submitted, 'every request completed, on the source');
  t.equal(r.cycles, 0, 'no cycle completed: the rehearsal stopped at the refusal');
});

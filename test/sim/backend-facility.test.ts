// The 'backend' state facility through the core, without vhost-user: a transport-level fake
// (test/support/backend-transport.ts) over sim devices with ring-state. What a user relies on:
// mechanisms() names it; stop/snapshot use it; reinit restores every queue's indices through it
// (on the same device or another sharing the memory) and requests held across the stop complete
// once; a target without it refuses the snapshot before touching anything; a lying back-end is
// caught (E_DEVICE_BAD_STATE).

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { backendTransport } from '../support/backend-transport.js';
import { codeOfAsync, codeOf } from '../support/codes.js';

const sector = (n: number): Uint8Array => new Uint8Array(512).fill(n & 0xff);

t.test('backend: the one list, stop, snapshot, reinit onto another device restoring indices', async (t) => {
  const a = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false }, completion: { latencyMs: 5 } });
  const fa = backendTransport(new VirtioPciTransport(a.fn));
  const blk = await BlkDriver.open(fa.transport, { layout: 'split', depth: 8 });
  t.teardown(() => blk.close());
  t.same(blk.device.mechanisms(), ['backend', 'quiesce'], 'the transport\'s facility, then quiesce; no ring-state of its own');
  await blk.write(1, sector(1));
  const pending = [2, 3, 4].map((n) => blk.write(n, sector(n)));
  t.equal(await blk.stop(), 'backend');
  t.equal(fa.stops, 1);
  const snap = blk.snapshot();
  t.equal(snap.mechanism, 'backend');
  t.ok(snap.queues[0]!.usedState > 0, 'the state is the device\'s, not a restart');
  const b = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false }, dma: a.dma, sharedDisk: a.disk });
  const fb = backendTransport(new VirtioPciTransport(b.fn));
  await blk.reinit(snap, { target: fb.transport });
  t.same(fb.restored.map((r) => r.q), [0], 'the target\'s facility restored the queue');
  t.same(fb.restored[0]!.state, { avail: snap.queues[0]!.availState, used: snap.queues[0]!.usedState }, 'with the snapshot\'s indices');
  await Promise.all(pending);
  t.same(await blk.read(3, 1), sector(3), 'a write in flight at the stop completed, once, on the target');
  t.equal(blk.device.transport.address, fb.transport.address);
});

t.test('backend: a target without the facility refuses the snapshot, untouched; the source takes it', async (t) => {
  const a = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false } });
  const fa = backendTransport(new VirtioPciTransport(a.fn));
  const blk = await BlkDriver.open(fa.transport, { layout: 'split' });
  t.teardown(() => blk.close());
  await blk.write(5, sector(5));
  await blk.stop();
  const snap = blk.snapshot();
  const plain = new VirtioPciTransport(createSimDevice({ type: 'blk', capacitySectors: 64, dma: a.dma }).fn);
  t.equal(await codeOfAsync(blk.reinit(snap, { target: plain })), 'E_SNAPSHOT_FEATURES', 'no backend facility on the target');
  t.equal(blk.device.phase, 'stopped', 'still stopped, ready for another attempt');
  await blk.reinit(snap);
  t.same(await blk.read(5, 1), sector(5));
});

t.test('backend: state a back-end reports that the rings cannot have is refused (E_DEVICE_BAD_STATE)', async (t) => {
  const a = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false } });
  const fa = backendTransport(new VirtioPciTransport(a.fn));
  const blk = await BlkDriver.open(fa.transport, { layout: 'split' });
  t.teardown(() => blk.close());
  await blk.write(0, sector(9));
  fa.lie = (_q, truth) => ({ avail: truth.avail + 3, used: truth.used });
  await blk.stop();
  t.equal(codeOf(() => blk.snapshot()), 'E_DEVICE_BAD_STATE');
});

t.test('device.dma: the transport\'s at open, the same across a reinit; a target reaching other memory is refused', async (t) => {
  const a = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false } });
  const ta = new VirtioPciTransport(a.fn);
  const blk = await BlkDriver.open(ta, { layout: 'split' });
  t.teardown(() => blk.close());
  const dma = blk.device.dma;
  t.equal(dma, ta.dma, 'the allocator the device was opened on');
  await blk.write(7, sector(7));
  await blk.stop();
  const snap = blk.snapshot();
  // A target whose allocator claims the ring addresses but holds other memory.
  const other = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false } });
  const fake = Object.create(new VirtioPciTransport(other.fn), {
    dma: { value: { ...other.dma, lookup: (iova: bigint, len: number) => ({ bytes: new Uint8Array(len), iova, size: len }) } },
  }) as VirtioPciTransport;
  t.equal(await codeOfAsync(blk.reinit(snap, { target: fake })), 'E_SNAPSHOT_ADDRESS');
  t.equal(blk.device.phase, 'stopped');
  const b = createSimDevice({ type: 'blk', capacitySectors: 64, state: { ringState: true, deviceState: false }, dma: a.dma, sharedDisk: a.disk });
  await blk.reinit(snap, { target: new VirtioPciTransport(b.fn) });
  t.equal(blk.device.dma, dma, 'still the same allocator after the migration');
  t.same(await blk.read(7, 1), sector(7));
});

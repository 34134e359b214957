// Stop / state / reinit on the driver side, at its edges: indices across the split 2^16 wrap and
// the packed wrap counters, a queue never used, stopping twice, the proposal's rules (state read
// only while stopped, STOP one-way), and snapshots the target must refuse without being touched.

import t from 'tap';
import { join } from 'node:path';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport } from '../../lib/open.js';
import { PACKED_STATE_WRAP, Status } from '../../lib/spec/index.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { readSnapshotFile, writeSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { sectorPayload, readVersion } from '../../cli/rehearsal/blk.js';
import { codeOfAsync } from '../support/codes.js';
import { tempDir } from '../support/tmp.js';


async function blkOn(query: string, layout: 'split' | 'packed') {
  const dev = await openTransport(`sim:blk?${query}`);
  const blk = await BlkDriver.open(dev.transport, { layout, depth: 4 });
  return { dev, blk };
}

t.test('split: state across the 2^16 index wrap survives stop, file, reinit', async (t) => {
  const { blk } = await blkOn('state=ring-state&queuesize=4', 'split');
  t.teardown(() => blk.close());
  // 65,530 requests through a 4-entry ring: the free-running indices sit just below the wrap.
  for (let i = 0; i < 65_530; i += 4) await Promise.all([0, 1, 2, 3].map((k) => blk.write(k, sectorPayload(k, i + k + 1))));
  await blk.stop();
  const before = blk.device.vqState(0);
  t.equal(before.avail, 65_532, 'avail state: the 65,532 writes made available');
  t.equal(before.used, before.avail, 'drained: used equals avail');
  const file = join(tempDir('uvirtio-'), 'wrap.json');
  writeSnapshotFile(file, blk.snapshot());
  await blk.reinit(readSnapshotFile(file));
  for (let i = 0; i < 40; i++) await blk.write(i % 4, sectorPayload(i % 4, 100_000 + i));
  await blk.stop();
  const after = blk.device.vqState(0);
  t.equal(after.avail, (before.avail + 40) & 0xffff, 'the index wrapped past 65535 and kept counting');
  t.ok(after.avail < before.avail, 'it really wrapped');
  await blk.reinit(blk.snapshot());
  for (let k = 0; k < 4; k++) t.equal(readVersion(k, await blk.read(k, 1)), 100_000 + 36 + k, `sector ${k} holds its last write`);
});

t.test('packed: wrap counters in the state encoding, across laps', async (t) => {
  const { blk } = await blkOn('state=ring-state&queuesize=4', 'packed');
  t.teardown(() => blk.close());
  const seen = new Set<boolean>();
  for (let round = 0; round < 6; round++) {
    await blk.write(round % 4, sectorPayload(round % 4, round + 1)); // one chain per request (indirect)
    await blk.stop();
    const s = blk.device.vqState(0);
    t.ok((s.avail & 0x7fff) < 4, `index within the ring (${s.avail & 0x7fff})`);
    seen.add((s.avail & PACKED_STATE_WRAP) !== 0);
    t.equal(s.used, s.avail, 'drained: used state equals avail state, wrap bit included');
    await blk.reinit(blk.snapshot());
  }
  t.same([...seen].sort(), [false, true], 'both wrap counter values were seen and restored');
  t.equal(readVersion(1, await blk.read(1, 1)), 6, 'data intact after six reinits');
});

t.test('a queue never used has the initial state and survives reinit on another device', async (t) => {
  const src = await openTransport('sim:blk?queues=2&state=ring-state&layout=packed');
  const dst = await openTransport('sim:blk?queues=2&state=ring-state&layout=packed', { shareWith: src });
  t.ok(src.sim?.type === 'blk' && dst.sim?.type === 'blk' && dst.sim.disk === src.sim.disk, 'the target shares the source\'s storage, not a copy');
  const dev = await VirtioDevice.open(src.transport, { features: { layout: 'packed' } });
  const qs = new QueueSet(dev);
  const q0 = qs.add(0);
  qs.add(1);
  await dev.driverOk();
  const hdr = dev.transport.dma.alloc(64);
  new DataView(hdr.bytes.buffer, hdr.bytes.byteOffset).setUint32(0, 4, true); // FLUSH
  await q0.submit([{ addr: hdr.iova, len: 16 }], [{ addr: hdr.iova + 32n, len: 1 }]);
  await qs.stop();
  t.same(dev.vqState(1), { avail: PACKED_STATE_WRAP, used: PACKED_STATE_WRAP }, 'queue 1: index 0, wrap counters 1');
  t.same(dev.vqState(0), { avail: PACKED_STATE_WRAP | 1, used: PACKED_STATE_WRAP | 1 }, 'queue 0: one request in and out');
  await qs.reinit(dev.snapshot(), { target: dst.transport });
  t.equal(dev.transport, dst.transport, 'the driver now drives the second device');
  await q0.submit([{ addr: hdr.iova, len: 16 }], [{ addr: hdr.iova + 32n, len: 1 }]);
  t.equal(dst.sim!.stats.completed[0], 1, 'the second device served the next request');
  await qs.close();
  src.transport.close();
});

t.test('stopping twice is harmless; state is read only while stopped; STOP is one-way', async (t) => {
  const { blk } = await blkOn('state=ring-state', 'split');
  t.teardown(() => blk.close());
  await blk.write(0, sectorPayload(0, 1));
  t.equal(await codeOfAsync(() => blk.device.vqState(0)), 'E_STATE_NOT_STOPPED', 'no state read from a running device');
  t.equal(await blk.stop(), 'ring-state');
  const first = blk.device.vqState(0);
  t.equal(await blk.stop(), 'ring-state', 'a second stop does nothing');
  t.same(blk.device.vqState(0), first, 'and the state is unchanged');
  t.ok(blk.device.status() & Status.STOP, 'STOP shows');
  t.equal(await codeOfAsync(blk.resume()), 'E_STATE_UNSUPPORTED', 'STOP cannot be undone: resume refused');
  t.ok(blk.device.status() & Status.STOP, 'STOP still shows');
  await blk.reinit(blk.snapshot());
  t.notOk(blk.device.status() & Status.STOP, 'only the reset of a reinit clears it');
  t.equal(readVersion(0, await blk.read(0, 1)), 1);
});

t.test('a snapshot of another device type, or a corrupt one, is refused and the device is left stopped', async (t) => {
  const net = await NetDriver.open((await openTransport('sim:net?state=ring-state')).transport);
  t.teardown(() => net.close());
  await net.stop();
  const netSnap = net.snapshot();
  const { blk } = await blkOn('state=ring-state', 'packed');
  t.teardown(() => blk.close());
  await blk.stop();
  const statusBefore = blk.device.status();
  t.equal(await codeOfAsync(blk.reinit(netSnap)), 'E_SNAPSHOT_DEVICE_TYPE');
  const good = blk.snapshot();
  t.equal(await codeOfAsync(blk.reinit({ ...good, queues: [{ ...good.queues[0]!, usedState: (good.queues[0]!.availState + 1) & 0xffff }] })), 'E_SNAPSHOT_USED_AHEAD');
  t.equal(await codeOfAsync(blk.reinit({ ...good, queues: [{ ...good.queues[0]!, desc: '0x10' }] })), 'E_SNAPSHOT_ADDRESS');
  t.equal(await codeOfAsync(blk.reinit({ ...good, version: 9 as 1 })), 'E_SNAPSHOT_VERSION');
  t.equal(blk.device.status(), statusBefore, 'the device was not touched by any refused snapshot');
  await blk.reinit(good);
  t.equal(blk.device.phase, 'live', 'the good snapshot still works afterwards');
});

t.test('quiesce on a device with no stop support says so, drains, and restarts the rings at 0', async (t) => {
  const { blk } = await blkOn('state=none&latency=2', 'split');
  t.teardown(() => blk.close());
  t.same(blk.device.mechanisms(), ['quiesce']);
  t.equal(await codeOfAsync(blk.stop({ mechanism: 'ring-state' })), 'E_STATE_UNSUPPORTED', 'ring-state refused on a device without it');
  const writes = [0, 1, 2, 3].map((k) => blk.write(k, sectorPayload(k, 9)));
  for (let i = 0; i < 100 && blk.device.queue(0).inFlight < 4; i++) await new Promise((r) => setImmediate(r));
  t.equal(blk.device.queue(0).inFlight, 4, 'four writes in flight, held by the device');
  t.equal(await blk.stop(), 'quiesce');
  t.equal(blk.device.queue(0).inFlight, 0, 'quiesce waited for everything in flight');
  await Promise.all(writes);
  const snap = blk.snapshot();
  t.equal(snap.mechanism, 'quiesce', 'the snapshot records the mechanism');
  await blk.reinit(snap);
  t.same(blk.device.queue(0).exportState().nextAvail, 0, 'the ring restarted at index 0');
  t.equal(readVersion(2, await blk.read(2, 1)), 9);
});

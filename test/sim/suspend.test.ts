// virtio 1.4 SUSPEND on the reference device, at register level (docs/provisional-registers.md#other-stop-mechanisms): the device
// finishes what it fetched (whatever the STOP mode), then shows SUSPEND and clears DRIVER_OK;
// while suspended it touches no ring and sends nothing; DRIVER_OK with SUSPEND clear resumes it,
// and it picks up what was made available meanwhile without another notification.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { BLK_SECTOR_SIZE, BlkReq, BlkStatus, CommonCfg, Feature, NET_HDR_LEN, Status, bit } from '../../lib/spec/index.js';
import {
  SimDriver, SplitRing, blkRequest, layoutFeatures, newRing, ringBytes, ruleIds, settle, type Layout, type TestRing,
} from '../support/sim-driver.js';

const SUSPEND = bit(Feature.SUSPEND);
const suspended = (s: number): boolean => (s & Status.SUSPEND) !== 0;

function bringUp(layout: Layout) {
  // 'hold' applies to STOP only: SUSPEND must still complete everything.
  const sim = createSimDevice({ type: 'blk', state: { suspend: true }, mode: 'hold', completion: 'manual' });
  const d = new SimDriver(sim);
  d.start(layoutFeatures(layout, SUSPEND));
  const ring = newRing(d, layout, 16);
  d.setupQueue(0, ring);
  d.driverOk();
  return { sim, d, ring };
}

function writes(d: SimDriver, ring: TestRing, sectors: number[]): number[] {
  return sectors.map((n) => ring.add(blkRequest(d, BlkReq.OUT, BigInt(n), new Uint8Array(BLK_SECTOR_SIZE).fill(n + 1)).segs));
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: SUSPEND drains, shows, clears DRIVER_OK; nothing moves while suspended; resume continues`, async (t) => {
    const { sim, d, ring } = bringUp(layout);
    const first = writes(d, ring, [0, 1, 2]);
    d.notify(0);
    await settle();
    t.equal(sim.held, 3);
    d.addStatus(Status.SUSPEND);
    t.notOk(suspended(d.status), 'not shown inside the register write');
    t.ok(d.status & Status.DRIVER_OK);
    const turns = await d.waitStatus(suspended);
    t.ok(turns >= 1, `shown after ${turns} turns`);
    t.notOk(d.status & Status.DRIVER_OK, 'DRIVER_OK cleared');
    t.equal(sim.phase, 'suspended');
    t.equal(sim.held, 0, 'everything fetched was completed, even in hold mode');
    t.same(ring.takeUsed().map((u) => u.id), first, 'with its used elements');
    t.same(d.vectors, [0], 'and its interrupt, before SUSPEND showed');
    if (ring instanceof SplitRing) t.equal(ring.usedIdx, 3, 'split: used->idx = last_avail_idx = 3');

    const later = writes(d, ring, [3, 4]);
    const before = ringBytes(ring);
    d.notify(0);
    sim.suppressNotifications(0, false);
    await settle(5);
    t.same(ringBytes(ring), before, 'while suspended no ring byte changes');
    t.equal(sim.held, 0, 'nothing fetched');
    t.same(d.vectors, [0], 'no interrupt');
    t.equal(sim.stats.notifications[0], 2, 'the notification was received, and ignored');

    d.w8(CommonCfg.DEVICE_STATUS, (d.status & ~Status.SUSPEND) | Status.DRIVER_OK);
    t.notOk(suspended(d.status), 'resumed: SUSPEND clear');
    t.ok(d.status & Status.DRIVER_OK, 'DRIVER_OK set');
    await settle();
    t.equal(sim.held, 2, 'the buffers made available while suspended were fetched without another notify');
    sim.completeNow();
    t.same(ring.takeUsed().map((u) => u.id), later);
    t.equal(sim.disk[4 * BLK_SECTOR_SIZE], 5);
    t.equal(sim.stats.completed[0], 5, 'five writes, each once');
    t.same(ruleIds(sim), ['notify-while-suspended', 'avail-while-suspended'], 'what the driver did while suspended is recorded (1.4 §3.4.1)');
  });
}

t.test('a notify just before SUSPEND is not fetched until resume, and then served', async (t) => {
  const sim = createSimDevice({ type: 'net', state: { suspend: true } });
  const d = new SimDriver(sim);
  d.start(SUSPEND);
  const rx = new SplitRing(d, 8);
  const tx = new SplitRing(d, 8);
  d.setupQueue(0, rx);
  d.setupQueue(1, tx);
  d.driverOk();
  const buf = d.alloc(128);
  rx.add([{ addr: buf.iova, len: buf.size, write: true }]);
  const frame = d.buffer(new Uint8Array(NET_HDR_LEN + 20).fill(7, NET_HDR_LEN));
  tx.add([{ addr: frame.iova, len: frame.size }]);
  d.notify(1);
  d.addStatus(Status.SUSPEND);
  await d.waitStatus(suspended);
  t.equal(tx.usedIdx, 0, 'the device stopped fetching at once: the frame was not taken');
  d.w8(CommonCfg.DEVICE_STATUS, (d.status & ~Status.SUSPEND) | Status.DRIVER_OK);
  await settle();
  t.equal(tx.usedIdx, 1, 'taken after resume');
  t.same(rx.takeUsed().map((u) => u.len), [NET_HDR_LEN + 20], 'and looped back');
  t.equal(buf.bytes[NET_HDR_LEN], 7);
});

t.test('SUSPEND needs its feature; resume needs SUSPEND clear; reset leaves it; STOP is not SUSPEND', async (t) => {
  const sim = createSimDevice({ type: 'blk', state: { suspend: true, ringState: true } });
  const d = new SimDriver(sim);
  d.start();
  const ring = new SplitRing(d, 8);
  d.setupQueue(0, ring);
  d.driverOk();
  d.addStatus(Status.SUSPEND | Status.STOP);
  await settle(5);
  t.notOk(d.status & (Status.SUSPEND | Status.STOP), 'neither negotiated: both ignored');
  const req = blkRequest(d, BlkReq.FLUSH, 0n);
  ring.add(req.segs);
  d.notify(0);
  await settle();
  t.equal(req.status.bytes[0], BlkStatus.OK, 'the device goes on');

  d.start(SUSPEND | bit(Feature.RING_STATE));
  d.setupQueue(0, new SplitRing(d, 8));
  d.driverOk();
  d.addStatus(Status.SUSPEND);
  await d.waitStatus(suspended);
  d.addStatus(Status.DRIVER_OK);
  t.ok(suspended(d.status), 'DRIVER_OK written with SUSPEND still set: still suspended');
  t.notOk(d.status & Status.DRIVER_OK);
  d.addStatus(Status.STOP);
  t.notOk(d.status & Status.STOP, 'STOP is not taken while suspended');
  d.reset();
  t.equal(d.status, 0, 'reset clears SUSPEND');
  t.equal(sim.phase, 'running');
});

// The proposal's STOP and virtqueue state on the reference device, at register level (docs/provisional-registers.md
// ): STOP shows only once the device is quiet (drain completes, hold keeps), nothing touches the
// rings afterwards, STOP is one-way, the state registers read and accept what the proposal says,
// and the common configuration capability covers exactly the registers offered.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { createSimDevice, decodeDeviceState, type Completion, type StopMode } from '../../lib/sim/index.js';
import {
  BLK_SECTOR_SIZE, BlkReq, BlkStatus, COMMON_CFG_EXT_LEN, COMMON_CFG_LEN, CommonCfg, Feature, PciCapType, Status, bit, hasFeature,
  packPackedState,
} from '../../lib/spec/index.js';
import {
  SimDriver, SplitRing, blkRequest, initialState, layoutFeatures, newRing, ringBytes, ruleIds, settle, type BlkRequest, type Layout, type TestRing,
} from '../support/sim-driver.js';

const RING_STATE = bit(Feature.RING_STATE) | bit(Feature.DEVICE_STATE);

function bringUp(layout: Layout, options: { completion?: Completion; mode?: StopMode; size?: number } = {}) {
  const sim = createSimDevice({
    type: 'blk', state: { ringState: true }, ...(options.mode ? { mode: options.mode } : {}), completion: options.completion ?? 'immediate',
  });
  const d = new SimDriver(sim);
  d.start(layoutFeatures(layout, RING_STATE));
  const ring = newRing(d, layout, options.size ?? 16);
  d.setupQueue(0, ring, initialState(layout));
  d.driverOk();
  return { sim, d, ring };
}

/** `n` one-sector writes to sectors first, first+1, …, each sector filled with its own byte; made available. */
function writes(d: SimDriver, ring: TestRing, n: number, first = 0): { req: BlkRequest; id: number }[] {
  return Array.from({ length: n }, (_, i) => {
    const req = blkRequest(d, BlkReq.OUT, BigInt(first + i), new Uint8Array(BLK_SECTOR_SIZE).fill(first + i + 1));
    return { req, id: ring.add(req.segs) };
  });
}

const stopped = (s: number): boolean => (s & Status.STOP) !== 0;

for (const layout of ['split', 'packed'] as const) {
  // Each blk write occupies three ring descriptors: header, data, status.
  const afterThree = (layout === 'split' ? 3 : packPackedState(9, true));

  t.test(`${layout}: drain — STOP shows only after the held requests are completed, used and signalled`, async (t) => {
    const { sim, d, ring } = bringUp(layout, { completion: 'manual' });
    const sent = writes(d, ring, 3);
    d.notify(0);
    await settle();
    t.equal(sim.held, 3, 'three requests fetched and held (manual completion)');
    d.addStatus(Status.STOP);
    t.notOk(stopped(d.status), 'not shown inside the register write');
    t.equal(sim.stats.completed[0], 0, 'nor completed inside it');
    t.equal(sim.phase, 'stopping');
    const turns = await d.waitStatus(stopped);
    t.ok(turns >= 1, `STOP showed after ${turns} turns, not at once`);
    t.equal(sim.stats.completed[0], 3, 'every held request was completed before STOP showed');
    t.same(ring.takeUsed().map((u) => u.id), sent.map((s) => s.id), 'their used elements are there');
    t.same(d.vectors, [0], 'and their interrupt was delivered');
    t.ok(sent.every((s) => s.req.status.bytes[0] === BlkStatus.OK));
    t.equal(sim.disk[2 * BLK_SECTOR_SIZE], 3, 'the data reached the disk');
    t.equal(sim.held, 0);
    t.same(d.readVqState(0), { avail: afterThree, used: afterThree }, 'drained: used state = avail state');
    t.equal(d.deviceStateLen, 0, 'no extra state: nothing is held');
    t.equal(sim.phase, 'stopped');
  });

  t.test(`${layout}: hold — STOP keeps fetched requests unfinished; SAVE yields a blob listing them`, async (t) => {
    const { sim, d, ring } = bringUp(layout, { completion: 'manual', mode: 'hold' });
    const sent = writes(d, ring, 3);
    d.notify(0);
    await settle();
    t.equal(d.saveDeviceState(), undefined, 'SAVE is refused while running');
    t.match(sim.stateRefusal, /STOP/);
    d.addStatus(Status.STOP);
    t.notOk(stopped(d.status));
    await d.waitStatus(stopped);
    t.equal(sim.held, 3, 'still held');
    t.equal(sim.stats.completed[0], 0, 'none completed');
    t.same(ring.takeUsed(), [], 'no used element written');
    t.same(d.vectors, [], 'no interrupt');
    t.ok(sent.every((s) => s.req.status.bytes[0] === 0xff), 'status bytes untouched');
    t.same(d.readVqState(0), { avail: afterThree, used: initialState(layout).used }, 'avail state past the held requests, used state before them');
    const len = d.deviceStateLen;
    t.ok(len > 0, `DEVICE_STATE_LEN reads ${len}`);
    const blob = d.saveDeviceState();
    t.ok(blob, 'SAVE done');
    t.equal(new TextDecoder().decode(blob!.subarray(0, 4)), 'UVDS');
    const held = decodeDeviceState(blob!, { queueCount: 1, queueMaxSize: 256 });
    t.same(held.map((h) => [h.queue, h.id, h.ringDescs]), sent.map((s) => [0, s.id, 3]), 'each held request, its id and ring descriptors');
    t.same(held[1]!.segments, sent[1]!.req.segs.map((s) => ({ addr: s.addr, len: s.len, writable: s.write === true })), 'with its segments');
    t.equal(sim.held, 3, 'SAVE does not complete them either');
  });

  t.test(`${layout}: once STOP shows, no ring byte changes, no interrupt, notifications and timers are ignored`, async (t) => {
    const { sim, d, ring } = bringUp(layout, { completion: { latencyMs: 10 }, mode: 'hold' });
    writes(d, ring, 2);
    d.notify(0);
    await settle();
    t.equal(sim.held, 2, 'held behind a latency timer');
    d.addStatus(Status.STOP);
    await d.waitStatus(stopped);
    writes(d, ring, 1, 5);
    const before = ringBytes(ring);
    const notifications = sim.stats.notifications[0]!;
    d.notify(0);
    sim.suppressNotifications(0, false);
    await new Promise((resolve) => setTimeout(resolve, 30));
    t.same(ringBytes(ring), before, 'descriptors, driver area and device area byte-identical after a notify and the timers');
    t.equal(sim.stats.notifications[0], notifications + 1, 'the notification arrived');
    t.equal(sim.held, 2, 'nothing fetched, nothing completed by the timers');
    t.equal(sim.completeNow(), 0, 'completeNow() touches no ring either');
    t.same(ringBytes(ring), before);
    t.same(d.vectors, [], 'no interrupt');
    t.equal(d.readIsr(), 0, 'no ISR bit');
    t.equal(sim.disk[5 * BLK_SECTOR_SIZE], 0, 'the new request was not served');
  });

  t.test(`${layout}: STOP is one-way; only a reset clears it, with the held requests`, async (t) => {
    const { sim, d, ring } = bringUp(layout, { completion: 'manual', mode: 'hold' });
    writes(d, ring, 2);
    d.notify(0);
    await settle();
    d.addStatus(Status.STOP);
    await d.waitStatus(stopped);
    d.w8(CommonCfg.DEVICE_STATUS, d.status & ~Status.STOP);
    await settle();
    t.ok(stopped(d.status), 'a write without STOP leaves it set');
    t.ok(d.status & Status.DRIVER_OK, 'and the other bits too');
    d.addStatus(Status.STOP);
    t.ok(stopped(d.status));
    d.reset();
    t.equal(d.status, 0, 'reset clears it');
    t.equal(sim.phase, 'running');
    t.equal(sim.held, 0, 'and forgets the held requests');
    d.start(layoutFeatures(layout, RING_STATE));
    t.same(d.readVqState(0), initialState(layout), 'a fresh start begins at the initial state');
    t.equal(d.deviceStateLen, 0);
  });

  t.test(`${layout}: state registers — initial values, writes only between FEATURES_OK and DRIVER_OK on a disabled queue`, async (t) => {
    const sim = createSimDevice({ type: 'blk', state: { ringState: true } });
    const d = new SimDriver(sim);
    const other = layout === 'split' ? { avail: 7, used: 5 } : { avail: packPackedState(7, false), used: packPackedState(5, true) };
    d.reset();
    d.addStatus(Status.ACKNOWLEDGE | Status.DRIVER);
    d.writeVqState(0, other);
    t.same(d.readVqState(0), { avail: 0, used: 0 }, 'before FEATURES_OK: the feature is not negotiated, the registers read 0');
    d.start(layoutFeatures(layout, RING_STATE));
    t.same(d.readVqState(0), initialState(layout), 'fresh init without a write: the initial state');
    d.writeVqState(0, other);
    t.same(d.readVqState(0), other, 'written between FEATURES_OK and DRIVER_OK');
    const ring = newRing(d, layout, 16);
    d.setupQueue(0, ring, initialState(layout));
    d.writeVqState(0, other);
    t.same(d.readVqState(0), initialState(layout), 'ignored once the queue is enabled');
    d.driverOk();
    d.writeVqState(0, other);
    t.same(d.readVqState(0), initialState(layout), 'ignored while DRIVER_OK');
    t.notOk(d.status & Status.DEVICE_NEEDS_RESET);
    t.same(ruleIds(sim).filter((id) => id !== 'state-read-not-stopped'), ['state-write-out-of-window'], 'the ignored writes recorded');
  });
}

t.test('split: the state registers across the 2^16 wrap of the free-running indices', async (t) => {
  const sim = createSimDevice({ type: 'blk', state: { ringState: true } });
  const d = new SimDriver(sim);
  d.start(RING_STATE);
  const ring = new SplitRing(d, 8);
  ring.startAt(65530);
  d.setupQueue(0, ring, { avail: 65530, used: 65530 });
  d.driverOk();
  for (let batch = 0; batch < 5; batch++) {
    ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
    ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
    d.notify(0);
    await settle();
    t.equal(ring.takeUsed().length, 2, `batch ${batch} served`);
  }
  d.addStatus(Status.STOP);
  await d.waitStatus(stopped);
  t.same(d.readVqState(0), { avail: 4, used: 4 }, '65530 + 10 wraps to 4');
  t.equal(ring.usedIdx, 4, 'used->idx in memory agrees');
});

t.test('packed: the wrap counters in the state encoding, a list that wraps, and a held request across the wrap', async (t) => {
  const { sim, d, ring } = bringUp('packed', { completion: 'manual', mode: 'hold', size: 4 });
  const [a] = writes(d, ring, 1);
  d.notify(0);
  await settle();
  sim.completeNow();
  t.same(ring.takeUsed().map((u) => u.id), [a!.id], 'A used (slots 0–2)');
  const [b] = writes(d, ring, 1, 1); // slots 3, 0, 1: the list wraps
  d.notify(0);
  await settle();
  d.addStatus(Status.STOP);
  await d.waitStatus(stopped);
  t.same(d.readVqState(0), { avail: packPackedState(2, false), used: packPackedState(3, true) },
    'avail: slot 2 in the second lap (wrap 0); used: slot 3 in the first (wrap 1)');
  const held = decodeDeviceState(d.saveDeviceState()!, { queueCount: 1, queueMaxSize: 256 });
  t.same(held.map((h) => [h.id, h.ringDescs]), [[b!.id, 3]], 'B is held, occupying three slots');
});

t.test('the capability length and the registers follow what is offered', async (t) => {
  const length = (state?: { ringState?: boolean; deviceState?: boolean }): number =>
    new SimDriver(createSimDevice({ type: 'blk', ...(state ? { state } : {}) })).cap(PciCapType.COMMON).length;
  t.equal(length(), COMMON_CFG_LEN, 'no state offered: as before');
  t.equal(length({ ringState: true, deviceState: false }), COMMON_CFG_LEN, 'RING_STATE: up to the state registers');
  t.equal(length({ ringState: true }), COMMON_CFG_EXT_LEN, 'DEVICE_STATE (default with RING_STATE): the mailbox too');
  t.throws(() => createSimDevice({ type: 'blk', state: { deviceState: true } }), { code: 'E_INVALID_ARGUMENT' });
  t.throws(() => createSimDevice({ type: 'blk', mode: 'later' as StopMode }), { code: 'E_INVALID_ARGUMENT' });

  const offered = new SimDriver(createSimDevice({ type: 'net', state: { ringState: true, suspend: true } })).deviceFeatures();
  t.ok(hasFeature(offered, Feature.RING_STATE) && hasFeature(offered, Feature.DEVICE_STATE) && hasFeature(offered, Feature.SUSPEND));
  t.notOk(hasFeature(new SimDriver(createSimDevice({ type: 'blk' })).deviceFeatures(), Feature.RING_STATE), 'nothing by default');

  const onlyRing = new SimDriver(createSimDevice({ type: 'blk', state: { ringState: true, deviceState: false } }));
  onlyRing.start(RING_STATE & ~bit(Feature.DEVICE_STATE));
  onlyRing.w16(CommonCfg.DEVICE_STATE_CMD, 1);
  t.equal(onlyRing.r16(CommonCfg.DEVICE_STATE_CMD), 0, 'no mailbox beyond a 0x44-byte structure');

  const d = new SimDriver(createSimDevice({ type: 'blk', state: { ringState: true } }));
  t.notOk(d.negotiate(bit(Feature.VERSION_1) | bit(Feature.DEVICE_STATE)), 'DEVICE_STATE without RING_STATE: FEATURES_OK refused');
  d.start();
  d.setupQueue(0, newRing(d, 'split', 8));
  d.driverOk();
  d.addStatus(Status.STOP);
  await settle(5);
  t.notOk(stopped(d.status), 'STOP is ignored when RING_STATE was not negotiated');
  t.ok(ruleIds(d.sim).includes('stop-not-allowed'), 'and recorded');
  t.same(d.readVqState(0), { avail: 0, used: 0 }, 'and the state registers read 0');
});

t.test('close() closes only the memory the device created', async (t) => {
  const own = createSimDevice({ type: 'blk' });
  own.fn.close();
  t.throws(() => own.dma.alloc(16), { code: 'E_CLOSED' }, 'its own allocator goes with it');
  const shared = new HeapDmaAllocator();
  const a = createSimDevice({ type: 'blk', dma: shared });
  const b = createSimDevice({ type: 'blk', dma: shared });
  a.fn.close();
  t.ok(shared.alloc(16), 'a shared allocator survives');
  t.equal(b.dma, shared);
});

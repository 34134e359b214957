// The fault catalogue (lib/sim/virtio/faults.ts), kind by kind, at register and ring level through the
// hand driver: each does what the table says, deterministically, and clearFaults() puts the
// device back to normal. (bad-used-id, used-len-overflow, used-index-jump and bad-packed-flags
// are shown in faults.test.ts; their count and clearing are here.) No fault is a driver error:
// none of them records a violation.

import t from 'tap';
import { BAD_BLK_STATUS, SHORT_NET_RX_LEN, createSimDevice, type SimBlkDevice, type SimBlkOptions } from '../../lib/sim/index.js';
import {
  BLK_SECTOR_SIZE, BlkReq, BlkStatus, CommonCfg, DeviceStateCmd, DeviceStateRefusal, Feature, Isr, NET_HDR_LEN,
  PACKED_STATE_WRAP, Status, bit,
} from '../../lib/spec/index.js';
import { codeOf } from '../support/codes.js';
import {
  SimDriver, SplitRing, blkRequest, liveDevice, ruleIds, settle, type Layout, type TestRing,
} from '../support/sim-driver.js';

const blk = (o: Omit<SimBlkOptions, 'type'> = {}): SimBlkDevice => createSimDevice({ type: 'blk', capacitySectors: 64, ...o });
const stopped = (s: number): boolean => (s & Status.STOP) !== 0;

/** A FLUSH on queue 0, notified; resolves once the device has had its turns. */
async function flush(d: SimDriver, ring: TestRing): Promise<ReturnType<typeof blkRequest>> {
  const r = blkRequest(d, BlkReq.FLUSH, 0n);
  ring.add(r.segs);
  d.notify(0);
  await settle();
  return r;
}

t.test('one-shot kinds: count used elements, then normal; clearFaults() drops what is pending', async (t) => {
  const { sim, d, ring } = liveDevice(blk());
  const split = ring as SplitRing;
  sim.injectFault({ kind: 'bad-used-id', count: 2 });
  for (let i = 0; i < 3; i++) await flush(d, ring);
  t.same(split.takeUsed().map((u) => u.id), [8, 8, 4], 'the first two name id 8 (= queue size), the third is right');
  sim.injectFault({ kind: 'used-len-overflow' });
  sim.clearFaults();
  await flush(d, ring);
  t.same(split.takeUsed(), [{ id: 6, len: 1 }], 'cleared before it applied: a normal used element');
  t.same(ruleIds(sim), []);
});

t.test('used-len-short: a blk read answers OK with len 1 and leaves its data untouched', async (t) => {
  for (const layout of ['split', 'packed'] as Layout[]) {
    const { sim, d, ring } = liveDevice(blk(), layout);
    sim.disk.fill(0x5a, 0, BLK_SECTOR_SIZE);
    sim.injectFault({ kind: 'used-len-short' });
    const read = blkRequest(d, BlkReq.IN, 0n, BLK_SECTOR_SIZE);
    read.data!.bytes.fill(0xee);
    ring.add(read.segs);
    d.notify(0);
    await settle();
    t.same(ring.takeUsed(), [{ id: 0, len: 1 }], `${layout}: len 1`);
    t.equal(read.status.bytes[0], BlkStatus.OK, `${layout}: status OK`);
    t.ok(read.data!.bytes.every((b) => b === 0xee), `${layout}: the data buffer was not written`);
    const f = await flush(d, ring);
    t.equal(f.status.bytes[0], BlkStatus.OK);
    t.same(ring.takeUsed().map((u) => u.len), [1], `${layout}: one-shot — the next request is normal`);
    sim.injectFault({ kind: 'used-len-short' });
    await flush(d, ring);
    t.same(ring.takeUsed().map((u) => u.len), [0], `${layout}: a request without data to read reports len 0`);
  }
});

t.test('used-len-short on net: a receive buffer reports less than the 12-byte header; transmits never take it', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const d = new SimDriver(sim);
  d.start();
  d.setConfigVector(0);
  const rx = new SplitRing(d, 8);
  const tx = new SplitRing(d, 8);
  d.setupQueue(0, rx);
  d.setupQueue(1, tx);
  d.driverOk();
  sim.injectFault({ kind: 'used-len-short' });
  tx.add([{ addr: d.alloc(NET_HDR_LEN + 60).iova, len: NET_HDR_LEN + 60 }]);
  d.notify(1);
  await settle();
  t.same(tx.takeUsed().map((u) => u.len), [0], 'the transmit is used normally (len 0 is right for it)');
  const buf = d.alloc(NET_HDR_LEN + 100);
  rx.add([{ addr: buf.iova, len: buf.size, write: true }]);
  d.notify(0);
  await settle();
  t.same(rx.takeUsed().map((u) => u.len), [SHORT_NET_RX_LEN], `the frame's buffer reports ${SHORT_NET_RX_LEN} bytes`);
  t.ok(SHORT_NET_RX_LEN < NET_HDR_LEN);
});

t.test('bad-blk-status: the request is carried out, its status byte is none of OK / IOERR / UNSUPP', async (t) => {
  const { sim, d, ring } = liveDevice(blk());
  sim.injectFault({ kind: 'bad-blk-status' });
  const w = blkRequest(d, BlkReq.OUT, 3n, new Uint8Array(BLK_SECTOR_SIZE).fill(9));
  ring.add(w.segs);
  d.notify(0);
  await settle();
  t.equal(w.status.bytes[0], BAD_BLK_STATUS);
  t.notOk([BlkStatus.OK, BlkStatus.IOERR, BlkStatus.UNSUPP].includes(BAD_BLK_STATUS as 0));
  t.equal(sim.disk[3 * BLK_SECTOR_SIZE], 9, 'the write reached the disk');
  t.equal((await flush(d, ring)).status.bytes[0], BlkStatus.OK, 'one-shot');
});

t.test('needs-reset: DEVICE_NEEDS_RESET now, with the config interrupt once DRIVER_OK is set', async (t) => {
  const early = new SimDriver(blk());
  early.start();
  early.sim.injectFault({ kind: 'needs-reset' });
  t.ok(early.status & Status.DEVICE_NEEDS_RESET, 'before DRIVER_OK: the bit');
  await settle();
  t.same(early.vectors, [], 'and no interrupt (§2.1.2: only once DRIVER_OK is set)');

  const { sim, d, ring } = liveDevice(blk());
  sim.injectFault({ kind: 'needs-reset' });
  t.ok(d.status & Status.DEVICE_NEEDS_RESET);
  t.equal(codeOf(() => { throw sim.failure; }), 'E_DEVICE_NEEDS_RESET');
  await settle();
  t.same(d.vectors, [1], 'the config interrupt, on the config vector');
  t.equal(d.readIsr(), Isr.CONFIG);
  t.equal((await flush(d, ring)).status.bytes[0], 0xff, 'a device that needs a reset serves nothing');
  sim.clearFaults();
  t.ok(d.status & Status.DEVICE_NEEDS_RESET, 'clearFaults() does not reset the device; the driver does');
  const again = liveDevice(sim);
  t.equal((await flush(again.d, again.ring)).status.bytes[0], BlkStatus.OK, 'after a reset it works');
  t.same(ruleIds(sim), []);
});

t.test('interrupt-storm: count interrupts on every vector; without MSI-X the ISR bits', async (t) => {
  const { sim, d } = liveDevice(blk({ queues: 2 }));
  sim.injectFault({ kind: 'interrupt-storm', count: 3 });
  await settle();
  t.same([...d.vectors].sort(), [0, 0, 0, 1, 1, 1, 2, 2, 2], 'three on each of the three vectors');
  t.equal(sim.stats.spuriousInterrupts, 9);
  t.same(sim.stats.interrupts, [0, 0], 'none counted as used-buffer notifications');

  const noMsix = new SimDriver(blk());
  noMsix.negotiate(bit(Feature.VERSION_1));
  noMsix.sim.injectFault({ kind: 'interrupt-storm' });
  t.equal(noMsix.readIsr(), Isr.QUEUE | Isr.CONFIG, 'ISR: queue and config bits');
  t.equal(noMsix.readIsr(), 0, 'read clears them');
});

t.test('reset-stuck: device_status never reads 0, the device goes quiet; clearFaults() completes the reset', async (t) => {
  const { sim, d, ring } = liveDevice(blk());
  const before = d.status;
  sim.injectFault({ kind: 'reset-stuck' });
  d.reset();
  for (let i = 0; i < 5; i++) {
    t.equal(d.status, before, `read ${i}: still the old status`);
    await settle(1);
  }
  t.equal((await flush(d, ring)).status.bytes[0], 0xff, 'no ring access');
  d.w8(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE);
  t.equal(d.status, before, 'status writes are ignored');
  t.same(ruleIds(sim), ['reinit-before-reset-read'], 'and a driver that writes anyway broke §4.1.4.3.2');
  sim.clearViolations();
  sim.clearFaults();
  t.equal(d.status, 0, 'the reset completed');
  const again = liveDevice(sim);
  t.equal((await flush(again.d, again.ring)).status.bytes[0], BlkStatus.OK, 'and the device works');
  t.same(ruleIds(sim), []);
});

for (const mode of ['drain', 'hold'] as const) {
  t.test(`stop-stuck (${mode}): STOP is acted on but never shown; clearFaults() shows it`, async (t) => {
    const sim = blk({ state: { ringState: true }, mode, completion: 'manual' });
    const { d, ring } = liveDevice(sim, 'split', bit(Feature.RING_STATE));
    ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
    d.notify(0);
    await settle();
    sim.injectFault({ kind: 'stop-stuck' });
    d.addStatus(Status.STOP);
    await settle(10);
    t.notOk(stopped(d.status), 'not shown');
    t.equal(sim.phase, 'stopping');
    t.equal(sim.held, mode === 'drain' ? 0 : 1, mode === 'drain' ? 'drained all the same' : 'held all the same');
    const r = blkRequest(d, BlkReq.FLUSH, 0n);
    ring.add(r.segs);
    d.notify(0);
    await settle();
    t.equal(r.status.bytes[0], 0xff, 'and fetches nothing new');
    sim.clearFaults();
    await d.waitStatus(stopped);
    t.equal(sim.phase, 'stopped', 'shown once cleared');
  });
}

t.test('stop-stuck: SUSPEND never shows either', async (t) => {
  const sim = blk({ state: { suspend: true } });
  const { d } = liveDevice(sim, 'packed', bit(Feature.SUSPEND));
  sim.injectFault({ kind: 'stop-stuck' });
  d.addStatus(Status.SUSPEND);
  await settle(10);
  t.notOk(d.status & Status.SUSPEND);
  t.ok(d.status & Status.DRIVER_OK);
  sim.clearFaults();
  await d.waitStatus((s) => (s & Status.SUSPEND) !== 0 && !(s & Status.DRIVER_OK));
  t.equal(sim.phase, 'suspended');
});

t.test('config-churn: config_generation changes on every read', async (t) => {
  const d = new SimDriver(blk());
  d.sim.injectFault({ kind: 'config-churn' });
  const reads = Array.from({ length: 5 }, () => d.r8(CommonCfg.CONFIG_GENERATION));
  t.equal(new Set(reads).size, 5, `five reads, five generations: ${reads.join(', ')}`);
  d.sim.clearFaults();
  const g = d.r8(CommonCfg.CONFIG_GENERATION);
  t.equal(d.r8(CommonCfg.CONFIG_GENERATION), g, 'stable once cleared');
});

t.test('interrupt-silence: used elements written, no used-buffer interrupt (of one queue, or all)', async (t) => {
  const { sim, d, ring } = liveDevice(blk({ queues: 2 }));
  sim.injectFault({ kind: 'interrupt-silence', queue: 1 });
  await flush(d, ring);
  t.same(d.vectors, [0], 'queue 0 still signals: the fault is on queue 1');
  sim.clearFaults();
  sim.injectFault({ kind: 'interrupt-silence' });
  d.vectors.length = 0;
  const r = await flush(d, ring);
  t.equal(r.status.bytes[0], BlkStatus.OK, 'completed');
  t.equal(ring.takeUsed().length, 2, 'used elements written');
  t.same(d.vectors, [], 'no interrupt');
  t.equal(sim.stats.interrupts[0], 1, 'only the first request was signalled');
  sim.clearFaults();
  await flush(d, ring);
  t.same(d.vectors, [0], 'interrupts again once cleared');
});

t.test('completion-silence: fetched and never completed — not by completeNow, not by a draining STOP; clearFaults() completes them', async (t) => {
  const sim = blk({ state: { ringState: true } });
  const { d, ring } = liveDevice(sim, 'split', bit(Feature.RING_STATE));
  sim.injectFault({ kind: 'completion-silence' });
  const r = await flush(d, ring);
  t.equal(sim.held, 1, 'fetched');
  t.equal(sim.completeNow(), 0, 'completeNow cannot finish it');
  d.addStatus(Status.STOP);
  await settle(10);
  t.notOk(stopped(d.status), 'a draining STOP never shows');
  t.equal(r.status.bytes[0], 0xff, 'the request is still not done');
  sim.clearFaults();
  await d.waitStatus(stopped);
  t.equal(r.status.bytes[0], BlkStatus.OK, 'completed once cleared, and STOP shows');
  t.same(d.readVqState(0), { avail: 1, used: 1 });
});

t.test('completion-silence on one queue; a receive queue never gets its buffers filled', async (t) => {
  const { sim, d, ring } = liveDevice(blk({ queues: 2 }));
  sim.injectFault({ kind: 'completion-silence', queue: 1 });
  t.equal((await flush(d, ring)).status.bytes[0], BlkStatus.OK, 'queue 0 is unaffected');

  const net = createSimDevice({ type: 'net' });
  const nd = new SimDriver(net);
  nd.start();
  nd.setConfigVector(0);
  const rx = new SplitRing(nd, 8);
  const tx = new SplitRing(nd, 8);
  nd.setupQueue(0, rx);
  nd.setupQueue(1, tx);
  nd.driverOk();
  net.injectFault({ kind: 'completion-silence', queue: 0 });
  rx.add([{ addr: nd.alloc(128).iova, len: 128, write: true }]);
  tx.add([{ addr: nd.alloc(NET_HDR_LEN + 40).iova, len: NET_HDR_LEN + 40 }]);
  nd.notify(1);
  await settle(5);
  t.equal(tx.takeUsed().length, 1, 'the transmit completes');
  t.same(rx.takeUsed(), [], 'the frame waits: no receive buffer is filled');
  net.clearFaults();
  await settle(5);
  t.same(rx.takeUsed().map((u) => u.len), [NET_HDR_LEN + 40], 'delivered once cleared');
});

t.test('state-lie: avail state count ahead, used state count behind; packed may name an impossible slot', async (t) => {
  for (const layout of ['split', 'packed'] as Layout[]) {
    const sim = blk({ state: { ringState: true } });
    const { d, ring } = liveDevice(sim, layout, bit(Feature.RING_STATE));
    await flush(d, ring);
    d.addStatus(Status.STOP);
    await d.waitStatus(stopped);
    const truth = d.readVqState(0);
    sim.injectFault({ kind: 'state-lie', count: 3 });
    const lie = d.readVqState(0);
    if (layout === 'split') {
      t.same(truth, { avail: 1, used: 1 }, 'split truth');
      t.same(lie, { avail: 4, used: 0xfffe }, 'split: 1 + 3 and 1 − 3 mod 2^16');
    } else {
      // Packed: a FLUSH takes 2 slots; index 2, wrap 1.
      t.same(truth, { avail: PACKED_STATE_WRAP | 2, used: PACKED_STATE_WRAP | 2 }, 'packed truth');
      t.same(lie, { avail: PACKED_STATE_WRAP | 5, used: PACKED_STATE_WRAP | 0x7fff }, 'packed: indices shifted, wrap bits kept');
      t.ok((lie.used & 0x7fff) >= 8, 'an index no ring of 8 has');
    }
    sim.clearFaults();
    t.same(d.readVqState(0), truth, `${layout}: the truth once cleared`);
  }
});

t.test('device-state-refuse: the chosen command refused with the chosen code until cleared', async (t) => {
  const sim = blk({ state: { ringState: true }, mode: 'hold', completion: 'manual' });
  const { d, ring } = liveDevice(sim, 'split', bit(Feature.RING_STATE) | bit(Feature.DEVICE_STATE));
  ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
  d.notify(0);
  await settle();
  d.addStatus(Status.STOP);
  await d.waitStatus(stopped);
  sim.injectFault({ kind: 'device-state-refuse', command: 'save', reason: DeviceStateRefusal.NOT_NOW });
  const buf = d.alloc(256);
  t.equal(d.deviceStateCommand(DeviceStateCmd.SAVE, buf), DeviceStateRefusal.NOT_NOW, 'SAVE refused with the chosen code');
  t.match(sim.stateRefusal, /injected/);
  sim.clearFaults();
  t.equal(d.deviceStateCommand(DeviceStateCmd.SAVE, buf), 0, 'SAVE works once cleared');
  t.same(ruleIds(sim), []);
});

t.test('features-refuse: FEATURES_OK never sticks, whatever the features; clearFaults() lets it', async (t) => {
  const d = new SimDriver(blk());
  d.sim.injectFault({ kind: 'features-refuse' });
  t.notOk(d.negotiate(bit(Feature.VERSION_1)), 'a perfectly good subset refused');
  t.notOk(d.negotiate(bit(Feature.VERSION_1) | bit(Feature.EVENT_IDX)));
  t.same(ruleIds(d.sim), [], 'not the driver\'s fault');
  d.sim.clearFaults();
  t.ok(d.negotiate(bit(Feature.VERSION_1)));
});

t.test('injectFault checks its fields', async (t) => {
  const sim = blk();
  const code = (f: Parameters<typeof sim.injectFault>[0]): string => codeOf(() => sim.injectFault(f));
  t.equal(code({ kind: 'nonsense' as 'needs-reset' }), 'E_INVALID_ARGUMENT', 'unknown kind');
  t.equal(code({ kind: 'bad-used-id', queue: 1 }), 'E_INVALID_ARGUMENT', 'a queue the device does not have');
  t.equal(code({ kind: 'interrupt-storm', count: 0 }), 'E_INVALID_ARGUMENT', 'count 0');
  t.equal(code({ kind: 'device-state-refuse', reason: 0 }), 'E_INVALID_ARGUMENT', 'reason 0 would read as success');
  t.equal(code({ kind: 'device-state-refuse', command: 'frob' as 'save' }), 'E_INVALID_ARGUMENT', 'unknown command');
  t.equal(code({ kind: 'state-lie', queue: 0, count: 2 }), 'no error', 'a good one is taken');
});

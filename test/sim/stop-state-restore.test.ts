// Bringing a stopped device's queues back (docs/provisional-registers.md, the proposal's "write the state during
// initialisation") on the reference device, at register level: on the same device after a reset
// and on a second device reaching the same memory, each held request is served exactly once and
// the rings continue from the saved indices; impossible states end in DEVICE_NEEDS_RESET at
// DRIVER_OK; corrupt DEVICE_STATE blobs are refused.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { createSimDevice, encodeDeviceState, type HeldRequest, type SimBlkDevice } from '../../lib/sim/index.js';
import {
  BLK_SECTOR_SIZE, BlkReq, BlkStatus, DeviceStateCmd, DeviceStateRefusal, Feature, NET_HDR_LEN, PACKED_STATE_WRAP, Status, bit, packPackedState,
} from '../../lib/spec/index.js';
import {
  SimDriver, blkRequest, initialState, layoutFeatures, newRing, settle, type BlkRequest, type Layout, type TestRing, type VqState,
} from '../support/sim-driver.js';

const STATE = bit(Feature.RING_STATE) | bit(Feature.DEVICE_STATE);
const stopped = (s: number): boolean => (s & Status.STOP) !== 0;

function sector(n: number): Uint8Array {
  return new Uint8Array(BLK_SECTOR_SIZE).fill(n + 1);
}

function writes(d: SimDriver, ring: TestRing, sectors: number[]): { req: BlkRequest; id: number }[] {
  return sectors.map((n) => {
    const req = blkRequest(d, BlkReq.OUT, BigInt(n), sector(n));
    return { req, id: ring.add(req.segs) };
  });
}

function diskSector(sim: SimBlkDevice, n: number): Uint8Array {
  return sim.disk.subarray(n * BLK_SECTOR_SIZE, (n + 1) * BLK_SECTOR_SIZE);
}

/**
 * A blk device in hold mode with two writes served (sectors 10, 11) and three held (0, 1, 2),
 * stopped: returns its state registers and DEVICE_STATE blob.
 */
async function stoppedWithHeld(layout: Layout) {
  // The driver's memory, owned by the test: it outlives the source device, as guest memory does.
  const dma = new HeapDmaAllocator();
  const sim = createSimDevice({ type: 'blk', dma, state: { ringState: true }, mode: 'hold', completion: 'manual' });
  const d = new SimDriver(sim);
  d.start(layoutFeatures(layout, STATE));
  const ring = newRing(d, layout, 16);
  d.setupQueue(0, ring, initialState(layout));
  d.driverOk();
  writes(d, ring, [10, 11]);
  d.notify(0);
  await settle();
  sim.completeNow();
  ring.takeUsed();
  const held = writes(d, ring, [0, 1, 2]);
  d.notify(0);
  await settle();
  d.addStatus(Status.STOP);
  await d.waitStatus(stopped);
  const state = d.readVqState(0);
  const blob = d.saveDeviceState();
  if (!blob || blob.length === 0) throw new Error('no device state saved');
  return { sim, d, ring, held, state, blob };
}

/** reset → features → queue 0 at the same ring with `state` → LOAD `blob` → DRIVER_OK. */
function restore(d: SimDriver, layout: Layout, ring: TestRing, state: VqState, blob?: Uint8Array): boolean {
  d.start(layoutFeatures(layout, STATE));
  d.setupQueue(0, ring, state);
  const loaded = blob ? d.loadDeviceState(blob) : true;
  d.driverOk();
  return loaded;
}

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: restore on the same device — held requests served once, indices continue`, async (t) => {
    const { sim, d, ring, held, state, blob } = await stoppedWithHeld(layout);
    t.same(state, layout === 'split' ? { avail: 5, used: 2 } : { avail: packPackedState(15, true), used: packPackedState(6, true) });
    d.reset();
    t.equal(sim.held, 0, 'the reset forgot them');
    t.ok(restore(d, layout, ring, state, blob), 'LOAD accepted');
    t.notOk(d.status & Status.DEVICE_NEEDS_RESET);
    t.equal(sim.held, 3, 'in flight again after DRIVER_OK');
    t.same(d.readVqState(0), state, 'the device took the written state');
    await settle();
    t.equal(sim.completeNow(), 3);
    t.equal(sim.completeNow(), 0, 'each once');
    t.same(ring.takeUsed().map((u) => u.id), held.map((h) => h.id), 'used elements with the held ids, at the used position');
    t.ok(held.every((h) => h.req.status.bytes[0] === BlkStatus.OK));
    t.same([0, 1, 2, 10, 11].map((n) => diskSector(sim, n)[0]), [1, 2, 3, 11, 12], 'every write on the disk');
    t.equal(sim.stats.completed[0], 5, 'the device served five writes in all: none twice');
    const [next] = writes(d, ring, [3]);
    d.notify(0);
    await settle();
    sim.completeNow();
    t.same(ring.takeUsed().map((u) => u.id), [next!.id], 'new requests continue from the restored indices');
    d.addStatus(Status.STOP);
    await d.waitStatus(stopped);
    const after = layout === 'split' ? { avail: 6, used: 6 } : { avail: packPackedState(2, false), used: packPackedState(2, false) };
    t.same(d.readVqState(0), after, 'and the state moved on from there');
  });

  t.test(`${layout}: restore on a second device sharing the memory`, async (t) => {
    const { sim, ring, held, state, blob } = await stoppedWithHeld(layout);
    sim.fn.close();
    const target = createSimDevice({ type: 'blk', dma: sim.dma, diskFrom: sim.disk, state: { ringState: true } });
    const d2 = new SimDriver(target);
    t.ok(restore(d2, layout, ring, state, blob), 'the target LOADs the source\'s blob');
    await settle();
    t.same(ring.takeUsed().map((u) => u.id), held.map((h) => h.id), 'the target used the held requests');
    t.same(d2.vectors, [0], 'and signalled them');
    t.equal(target.stats.completed[0], 3, 'each once');
    t.same([0, 1, 2, 10, 11].map((n) => diskSector(target, n)[0]), [1, 2, 3, 11, 12], 'the target\'s disk has all five writes');
    const [next] = writes(d2, ring, [4]);
    d2.notify(0);
    await settle();
    t.same(ring.takeUsed().map((u) => u.id), [next!.id], 'traffic continues on the target');
    t.equal(diskSector(target, 4)[0], 5);
  });

  t.test(`${layout}: net — held tx frames travel in the blob and loop back on the target`, async (t) => {
    const sim = createSimDevice({ type: 'net', dma: new HeapDmaAllocator(), state: { ringState: true }, mode: 'hold', completion: 'manual' });
    const d = new SimDriver(sim);
    d.start(layoutFeatures(layout, STATE));
    const rx = newRing(d, layout, 8);
    const tx = newRing(d, layout, 8);
    d.setupQueue(0, rx, initialState(layout));
    d.setupQueue(1, tx, initialState(layout));
    d.driverOk();
    const rxBufs = Array.from({ length: 4 }, () => d.alloc(128));
    for (const b of rxBufs) rx.add([{ addr: b.iova, len: b.size, write: true }]);
    d.notify(0);
    const frame = (n: number): Uint8Array => new Uint8Array(NET_HDR_LEN + 40).fill(n, NET_HDR_LEN);
    const send = (n: number): number => {
      const f = d.buffer(frame(n));
      return tx.add([{ addr: f.iova, len: f.size }]);
    };
    send(1);
    d.notify(1);
    await settle();
    sim.completeNow();
    t.equal(rx.takeUsed().length, 1, 'frame 1 looped back on the source');
    tx.takeUsed();
    const heldIds = [send(2), send(3)];
    d.notify(1);
    await settle();
    d.addStatus(Status.STOP);
    await d.waitStatus(stopped);
    t.equal(sim.held, 2);
    const states = [d.readVqState(0), d.readVqState(1)];
    const blob = d.saveDeviceState()!;
    sim.fn.close();

    const target = createSimDevice({ type: 'net', dma: sim.dma, state: { ringState: true } });
    const d2 = new SimDriver(target);
    d2.start(layoutFeatures(layout, STATE));
    d2.setupQueue(0, rx, states[0]);
    d2.setupQueue(1, tx, states[1]);
    t.ok(d2.loadDeviceState(blob));
    d2.driverOk();
    await settle();
    t.same(tx.takeUsed().map((u) => u.id), heldIds, 'the held tx frames were used on the target');
    const got = rx.takeUsed();
    t.same(got.map((u) => u.len), [NET_HDR_LEN + 40, NET_HDR_LEN + 40], 'and came back on its rx queue');
    // Each rx buffer is one descriptor, added in order: split head and packed buffer id are both its index.
    t.same(got.map((u) => rxBufs[u.id]!.bytes[NET_HDR_LEN]), [2, 3], 'frames 2 and 3, once each, in the next rx buffers');
  });

  t.test(`${layout}: a state impossible for the layout sets DEVICE_NEEDS_RESET at DRIVER_OK`, async (t) => {
    const W = PACKED_STATE_WRAP;
    const cases: { state: VqState; why: string }[] = layout === 'split'
      ? [
        { state: { avail: 0, used: 5 }, why: 'used ahead of available' },
        { state: { avail: 100, used: 0 }, why: 'more than the ring behind' },
      ]
      : [
        { state: { avail: W | 16, used: W }, why: 'index = queue size' },
        { state: { avail: W, used: W | 3 }, why: 'used ahead in the same lap' },
        { state: { avail: 3, used: W | 1 }, why: 'more than a lap apart' },
      ];
    for (const { state, why } of cases) {
      const sim = createSimDevice({ type: 'blk', state: { ringState: true, deviceState: false } });
      const d = new SimDriver(sim);
      d.start(layoutFeatures(layout, bit(Feature.RING_STATE)));
      d.setupQueue(0, newRing(d, layout, 16), state);
      t.notOk(d.status & Status.DEVICE_NEEDS_RESET, `${why}: accepted until DRIVER_OK`);
      d.driverOk();
      t.ok(d.status & Status.DEVICE_NEEDS_RESET, `${why}: NEEDS_RESET`);
      t.match(sim.failure?.message, /impossible/);
    }
  });

  t.test(`${layout}: with DEVICE_STATE, requests between used and avail must be the held ones loaded`, async (t) => {
    const { d, ring, state, blob } = await stoppedWithHeld(layout);
    d.reset();
    restore(d, layout, ring, state);
    t.ok(d.status & Status.DEVICE_NEEDS_RESET, 'no LOAD: three requests unaccounted for');
    d.reset();
    restore(d, layout, ring, state, encodeDeviceState([]));
    t.ok(d.status & Status.DEVICE_NEEDS_RESET, 'a blob holding none');
    d.reset();
    t.ok(restore(d, layout, ring, state, blob));
    t.notOk(d.status & Status.DEVICE_NEEDS_RESET, 'the right blob');
  });
}

t.test('LOAD refuses a corrupt or misplaced blob; SAVE and LOAD only at their times', async (t) => {
  const sim = createSimDevice({ type: 'blk', state: { ringState: true } });
  const d = new SimDriver(sim);
  d.start(STATE);
  const header = d.alloc(16);
  const status = d.alloc(1);
  const good: HeldRequest = {
    queue: 0, id: 0, ringDescs: 2,
    segments: [{ addr: header.iova, len: 16, writable: false }, { addr: status.iova, len: 1, writable: true }],
  };
  const encode = (r: Partial<HeldRequest>, tweak?: (b: Uint8Array) => void): Uint8Array => {
    const b = encodeDeviceState([{ ...good, ...r }]);
    tweak?.(b);
    return b;
  };
  const corrupt: [string, Uint8Array][] = [
    ['bad magic', encode({}, (b) => { b[0] = 0x58; })],
    ['version 2', encode({}, (b) => { b[4] = 2; })],
    ['queue beyond the device', encode({ queue: 1 })],
    ['id beyond the largest queue', encode({ id: 256 })],
    ['zero ring descriptors', encode({ ringDescs: 0 })],
    ['no segments', encode({ segments: [] })],
    ['zero-length segment', encode({ segments: [{ addr: header.iova, len: 0, writable: false }] })],
    ['writable = 2', encode({}, (b) => { b[8 + 8 + 12] = 2; })],
    ['non-zero padding', encode({}, (b) => { b[8 + 8 + 13] = 1; })],
    ['readable after writable', encode({ segments: [good.segments[1]!, good.segments[0]!] })],
    ['segment outside the driver\'s memory', encode({ segments: [{ addr: 0xdead_0000n, len: 16, writable: false }] })],
    ['truncated', encode({}).subarray(0, 30)],
    ['trailing bytes', Uint8Array.from([...encode({}), 0])],
    ['count says two', encode({}, (b) => { b[6] = 2; })],
    ['shorter than a header', Uint8Array.of(0x55, 0x56)],
  ];
  for (const [why, bytes] of corrupt) {
    t.notOk(d.loadDeviceState(bytes), `${why}: refused`);
    t.match(sim.stateRefusal, /./, `the device says why: ${sim.stateRefusal ?? ''}`);
  }
  t.equal(d.deviceStateCommand(DeviceStateCmd.LOAD, { iova: 0x1234n }, 40), DeviceStateRefusal.BAD_ADDRESS, 'an address outside the driver\'s memory: BAD_ADDRESS');
  t.equal(d.deviceStateCommand(7, d.alloc(8)), DeviceStateRefusal.UNKNOWN_COMMAND, 'an unknown command: UNKNOWN_COMMAND');
  t.equal(d.saveDeviceState(), undefined, 'SAVE before DRIVER_OK');
  d.setupQueue(0, newRing(d, 'split', 16), initialState('split'));
  d.driverOk();
  t.notOk(d.status & Status.DEVICE_NEEDS_RESET, 'refused LOADs left nothing behind: the device starts normally');
  t.notOk(d.loadDeviceState(encode({})), 'LOAD after DRIVER_OK');
  t.match(sim.stateRefusal, /FEATURES_OK/);
});

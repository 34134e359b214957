// Notification suppression both ways: EVENT_IDX (split used_event/avail_event, packed DESC
// events), the flag-only schemes, and the device asking the driver not to notify.
import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { AvailFlag, BlkReq, Feature, Isr, PackedEventFlag, UsedFlag, bit } from '../../lib/spec/index.js';
import { PackedRing, SimDriver, SplitRing, blkRequest, settle } from '../support/sim-driver.js';

function bringUp(packed: boolean, eventIdx: boolean) {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 64, completion: 'manual' });
  const d = new SimDriver(sim);
  d.start((packed ? bit(Feature.RING_PACKED) : 0n) | (eventIdx ? bit(Feature.EVENT_IDX) : 0n));
  const ring = packed ? new PackedRing(d, 16) : new SplitRing(d, 16);
  d.setupQueue(0, ring);
  d.driverOk();
  return { sim, d, ring };
}

function flush(d: SimDriver, ring: SplitRing | PackedRing): void {
  ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
}

t.test('split EVENT_IDX: interrupts only when used idx passes used_event', async (t) => {
  const { sim, d, ring } = bringUp(false, true);
  const split = ring as SplitRing;
  split.usedEvent = 2; // "interrupt me when the third buffer is used"
  for (let i = 0; i < 4; i++) flush(d, ring);
  d.notify(0);
  await settle();
  t.equal(split.availEvent, 4, 'avail_event = last_avail_idx after fetching');
  t.equal(split.usedFlags, 0, 'flags stay 0 with EVENT_IDX');
  t.equal(sim.completeNow(), 4);
  await settle();
  t.equal(sim.stats.interrupts[0], 1, 'first batch: the device had not signalled yet');
  flush(d, ring);
  flush(d, ring);
  d.notify(0);
  await settle();
  split.usedEvent = 10;
  sim.completeNow();
  await settle();
  t.equal(sim.stats.interrupts[0], 1, 'used idx 6 has not passed used_event 10: suppressed');
  for (let i = 0; i < 5; i++) flush(d, ring);
  d.notify(0);
  await settle();
  sim.completeNow();
  await settle();
  t.equal(split.usedIdx, 11);
  t.equal(sim.stats.interrupts[0], 2, 'used idx moved 6 → 11 past 10: interrupt');
  t.same(d.vectors, [0, 0]);
});

t.test('split without EVENT_IDX: NO_INTERRUPT suppresses; NO_NOTIFY advertises polling', async (t) => {
  const { sim, d, ring } = bringUp(false, false);
  const split = ring as SplitRing;
  split.availFlags = AvailFlag.NO_INTERRUPT;
  flush(d, ring);
  d.notify(0);
  await settle();
  sim.completeNow();
  await settle();
  t.equal(split.usedIdx, 1);
  t.equal(sim.stats.interrupts[0], 0);
  split.availFlags = 0;
  flush(d, ring);
  d.notify(0);
  await settle();
  sim.completeNow();
  await settle();
  t.equal(sim.stats.interrupts[0], 1);

  sim.suppressNotifications(0, true);
  t.equal(split.usedFlags, UsedFlag.NO_NOTIFY, 'the device asks not to be notified');
  flush(d, ring);
  await settle();
  t.equal(sim.held, 0, 'no notification, no fetch');
  sim.suppressNotifications(0, false);
  t.equal(split.usedFlags, 0);
  await settle();
  t.equal(sim.held, 1, 're-enabling re-checks the ring');
});

t.test('split EVENT_IDX: a suppressing device leaves avail_event behind', async (t) => {
  const { sim, d, ring } = bringUp(false, true);
  const split = ring as SplitRing;
  flush(d, ring);
  d.notify(0);
  await settle();
  t.equal(split.availEvent, 1);
  sim.suppressNotifications(0, true);
  flush(d, ring);
  flush(d, ring);
  await settle();
  t.equal(split.availEvent, 1, 'not advanced while suppressed');
  sim.suppressNotifications(0, false);
  await settle();
  t.equal(split.availEvent, 3);
  t.equal(sim.held, 3);
});

t.test('packed: driver event DISABLE / DESC / ENABLE and the device event structure', async (t) => {
  const { sim, d, ring } = bringUp(true, true);
  const packed = ring as PackedRing;
  flush(d, ring);
  d.notify(0);
  await settle();
  t.equal(packed.deviceEventFlags, PackedEventFlag.DESC, 'with EVENT_IDX the device asks for a specific descriptor');
  t.equal(packed.deviceEventOffWrap, 2 | 0x8000, 'the next slot (a flush takes two), wrap 1');
  packed.setDriverEvent(PackedEventFlag.DISABLE);
  sim.completeNow();
  await settle();
  t.equal(sim.stats.interrupts[0], 0, 'DISABLE');
  packed.setDriverEvent(PackedEventFlag.DESC, 6 | 0x8000); // slot 6, wrap 1: where the fourth request's used descriptor goes
  for (let i = 0; i < 2; i++) flush(d, ring);
  d.notify(0);
  await settle();
  sim.completeNow();
  await settle();
  t.equal(sim.stats.interrupts[0], 0, 'used descriptors at slots 2 and 4: not yet');
  flush(d, ring);
  d.notify(0);
  await settle();
  sim.completeNow();
  await settle();
  t.equal(sim.stats.interrupts[0], 1, 'slot 6 used: interrupt');
  packed.setDriverEvent(PackedEventFlag.ENABLE);
  flush(d, ring);
  d.notify(0);
  await settle();
  sim.completeNow();
  await settle();
  t.equal(sim.stats.interrupts[0], 2, 'ENABLE');
  sim.suppressNotifications(0, true);
  t.equal(packed.deviceEventFlags, PackedEventFlag.DISABLE);
});

t.test('without MSI-X the ISR queue bit is set; NO_VECTOR queues get no message', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const d = new SimDriver(sim);
  d.negotiate(bit(Feature.VERSION_1));
  const ring = new SplitRing(d, 8);
  d.setupQueue(0, ring);
  d.driverOk();
  flush(d, ring);
  d.notify(0);
  await settle();
  t.equal(d.readIsr(), Isr.QUEUE, 'MSI-X disabled: the ISR carries it');
  t.equal(sim.stats.interrupts[0], 1);

  const sim2 = createSimDevice({ type: 'blk' });
  const d2 = new SimDriver(sim2);
  d2.start();
  const ring2 = new SplitRing(d2, 8);
  d2.setupQueue(0, ring2);
  d2.w16(0x1a, 0xffff); // queue_msix_vector = NO_VECTOR
  d2.driverOk();
  flush(d2, ring2);
  d2.notify(0);
  await settle();
  t.equal(ring2.usedIdx, 1);
  t.same(d2.vectors, []);
  t.equal(d2.readIsr(), 0, 'MSI-X enabled: the ISR queue bit is not used');
});

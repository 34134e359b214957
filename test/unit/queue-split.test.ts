// Split virtqueue (virtio 1.2 §2.7) against a device driven by hand.
import t from 'tap';
import fc from 'fast-check';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { AvailFlag, UsedFlag } from '../../lib/spec/index.js';
import { VirtqueueError } from '../../lib/errors.js';
import { SplitVirtqueue, createVirtqueue, type QueueFeatures, type Segment } from '../../lib/virtio/queue/index.js';
import { SplitHandDevice, runInterleaving, stepArbitrary, seg, segs } from '../support/hand-device.js';
import { codeOf } from '../support/codes.js';

const QUEUE_INDEX = 3;

function setup(size = 8, features: Partial<QueueFeatures> = {}, indirectThreshold?: number) {
  const dma = new HeapDmaAllocator();
  let notifications = 0;
  const vq = new SplitVirtqueue<number>({
    index: QUEUE_INDEX, size, dma, indirectThreshold,
    features: { indirect: false, eventIdx: false, ...features },
    notify: () => { notifications++; },
  });
  return { dma, vq, dev: new SplitHandDevice(dma, vq), notifications: () => notifications };
}



void t.test('a single request goes to the device and comes back with its token and length', async (t) => {
  const { vq, dev, notifications } = setup();
  vq.add([seg(0x1000, 16)], [seg(0x2000, 512)], 7);
  t.equal(vq.inFlight, 1);
  t.equal(vq.numFree, 6);
  t.equal(vq.kick(), true, 'kick notifies when nothing suppresses it');
  t.equal(notifications(), 1);
  const chains = dev.takeAll();
  t.equal(chains.length, 1);
  t.same(chains[0]!.segments, [{ addr: 0x1000n, len: 16, write: false }, { addr: 0x2000n, len: 512, write: true }]);
  t.equal(chains[0]!.indirect, false);
  t.equal(vq.popUsed(), null, 'nothing is used before the device says so');
  dev.complete(chains[0]!, 100);
  t.same(vq.popUsed(), { token: 7, len: 100 });
  t.equal(vq.popUsed(), null);
  t.equal(vq.inFlight, 0);
  t.equal(vq.numFree, 8);
  t.equal(vq.kick(), false, 'a kick with nothing new does not notify');
});

void t.test('createVirtqueue builds a split queue whose addresses honour the spec alignments', async (t) => {
  const dma = new HeapDmaAllocator();
  const vq = createVirtqueue('split', { index: 0, size: 256, dma, features: { indirect: false, eventIdx: false }, notify: () => {} });
  t.ok(vq instanceof SplitVirtqueue);
  t.equal(vq.addresses.desc % 16n, 0n);
  t.equal(vq.addresses.driver % 2n, 0n);
  t.equal(vq.addresses.device % 4n, 0n);
  t.equal(vq.addresses.driver - vq.addresses.desc, 16n * 256n, 'the avail ring follows the descriptor table');
});

void t.test('a chain as long as the ring fits; one segment more never does', async (t) => {
  const { vq, dev } = setup(8);
  vq.add(segs(3, 0x10000), segs(5, 0x20000, 100), 1);
  t.equal(vq.numFree, 0);
  const [chain] = dev.takeAll();
  t.equal(chain!.segments.length, 8);
  t.same(chain!.segments.map((s) => s.write), [false, false, false, true, true, true, true, true]);
  t.same(chain!.segments.map((s) => s.addr), [...segs(3, 0x10000), ...segs(5, 0x20000)].map((s) => s.addr));
  dev.complete(chain!, 500);
  t.same(vq.popUsed(), { token: 1, len: 500 });
  t.equal(codeOf(() => vq.add(segs(4, 0x10000), segs(5, 0x20000), 2)), 'E_BAD_CHAIN');
  const indirect = setup(8, { indirect: true });
  t.equal(codeOf(() => indirect.vq.add(segs(9, 0x10000), [], 2)), 'E_BAD_CHAIN', 'indirect chains are bounded by the queue size too (§2.7.5.3.1)');
});

void t.test('malformed chains are refused with E_BAD_CHAIN and change nothing', async (t) => {
  const { vq, dev } = setup(8);
  const bad: [string, Segment[], Segment[]][] = [
    ['empty', [], []],
    ['zero length', [seg(0x1000, 0)], []],
    ['length over 2^32-1', [], [seg(0x1000, 2 ** 32)]],
    ['fractional length', [seg(0x1000, 1.5)], []],
    ['negative address', [{ addr: -1n, len: 8 }], []],
    ['address over 64 bits', [{ addr: 1n << 64n, len: 8 }], []],
    ['more than 2^32 bytes in total', [seg(0x1000, 0xffff_ffff)], [seg(0x2000, 2)]],
  ];
  for (const [what, readable, writable] of bad) {
    let error: unknown;
    try {
      vq.add(readable, writable, 1);
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof VirtqueueError && error.code === 'E_BAD_CHAIN' && !error.device && error.queue === QUEUE_INDEX, what);
  }
  t.equal(vq.numFree, 8);
  t.equal(vq.inFlight, 0);
  t.equal(dev.availIdx, 0, 'nothing was published');
  t.equal(vq.broken, null, 'a caller mistake does not break the queue');
});

void t.test('indirect chains take one ring descriptor and reuse their tables', async (t) => {
  const { dma, vq, dev } = setup(8, { indirect: true });
  let allocations = 0;
  const alloc = dma.alloc.bind(dma);
  dma.alloc = (size, align) => { allocations++; return alloc(size, align); };

  vq.add(segs(2, 0x10000), segs(4, 0x20000, 10), 1);
  vq.add([seg(0x30000, 8)], [], 2);
  t.equal(vq.numFree, 6, 'a 6-segment indirect chain and a 1-segment direct chain take one descriptor each');
  const [indirect, direct] = dev.takeAll();
  t.equal(indirect!.indirect, true);
  t.equal(indirect!.ringDescs, 1);
  t.same(indirect!.segments, [...segs(2, 0x10000).map((s) => ({ ...s, write: false })), ...segs(4, 0x20000, 10).map((s) => ({ ...s, write: true }))]);
  t.equal(direct!.indirect, false, 'below the threshold chains go direct');
  dev.complete(indirect!, 40);
  dev.complete(direct!, 0);
  t.same([vq.popUsed(), vq.popUsed()], [{ token: 1, len: 40 }, { token: 2, len: 0 }]);

  const warm = allocations;
  for (let round = 0; round < 100; round++) {
    for (let k = 0; k < 4; k++) vq.add(segs(2 + k, 0x10000), segs(1, 0x20000), k);
    for (const c of dev.takeAll()) dev.complete(c, 1);
    while (vq.popUsed());
  }
  t.ok(allocations - warm <= 2, `tables come from the pool after warm-up (${allocations - warm} new DMA allocations)`);

  const never = setup(4, { indirect: true }, Infinity);
  never.vq.add(segs(3, 0x10000), [], 1);
  t.equal(never.vq.numFree, 1, 'indirectThreshold Infinity keeps chains direct');
});

void t.test('a full ring refuses with E_QUEUE_FULL until a used buffer frees room', async (t) => {
  const { vq, dev } = setup(4);
  for (let i = 0; i < 3; i++) vq.add([seg(0x1000 * (i + 1), 8)], [], i);
  t.equal(vq.canAdd(1, 1), false);
  t.equal(codeOf(() => vq.add([seg(0x9000, 8)], [seg(0xa000, 8)], 9)), 'E_QUEUE_FULL', 'two descriptors needed, one free');
  vq.add([seg(0x4000, 8)], [], 3);
  t.equal(vq.canAdd(1, 0), false);
  t.equal(codeOf(() => vq.add([seg(0x5000, 8)], [], 4)), 'E_QUEUE_FULL');
  vq.kick();
  const chains = dev.takeAll();
  dev.complete(chains[2]!, 0);
  t.same(vq.popUsed(), { token: 2, len: 0 });
  t.equal(vq.canAdd(1, 0), true);
  vq.add([seg(0x5000, 8)], [], 4);
  t.equal(vq.inFlight, 4);
});

void t.test('70000 requests through a 4-entry ring cross the 16-bit index wrap', async (t) => {
  const { vq, dev } = setup(4);
  let sent = 0;
  let received = 0;
  let wrapped = false;
  let previousAvail = 0;
  let mismatches = 0;
  while (sent < 70_000) {
    while (vq.canAdd(1, 1)) {
      vq.add([seg(0x1000, 16)], [seg(0x2000 + (sent % 7), 64)], sent);
      sent++;
    }
    vq.kick();
    if (dev.availIdx < previousAvail) wrapped = true;
    previousAvail = dev.availIdx;
    const chains = dev.takeAll().reverse(); // complete out of order
    for (const c of chains) dev.complete(c, c.segments[1]!.addr === 0x2000n ? 64 : 1);
    for (let u = vq.popUsed(); u; u = vq.popUsed()) {
      if (u.len !== (u.token % 7 === 0 ? 64 : 1)) mismatches++;
      received++;
    }
  }
  t.ok(wrapped, 'avail->idx wrapped past 65535');
  t.equal(received, sent);
  t.equal(mismatches, 0, 'every length matched its request');
  t.equal(vq.exportState().nextAvail, sent & 0xffff);
  t.equal(vq.exportState().lastUsed, sent & 0xffff);
});

void t.test('sizes 2 and 32768 fill completely and drain; other sizes are refused', async (t) => {
  for (const size of [2, 32768]) {
    const { vq, dev } = setup(size);
    for (let round = 0; round < 3; round++) {
      let n = 0;
      while (vq.canAdd(1, 0)) vq.add([seg(0x1000, 8)], [], n++);
      t.equal(n, size, `size ${size}, round ${round}: ${size} single-descriptor chains fit`);
      vq.kick();
      for (const c of dev.takeAll()) dev.complete(c, 0);
      let back = 0;
      while (vq.popUsed()) back++;
      t.equal(back, size);
    }
  }
  for (const size of [0, 1, 3, 6, 65536, 2.5]) {
    t.equal(codeOf(() => setup(size)), 'E_INVALID_ARGUMENT', `size ${size}`);
  }
});

void t.test('without EVENT_IDX, kick notifies unless the device set NO_NOTIFY (§2.7.10)', async (t) => {
  const { vq, dev, notifications } = setup(8);
  dev.setUsedFlags(UsedFlag.NO_NOTIFY);
  vq.add([seg(0x1000, 8)], [], 1);
  t.equal(vq.kick(), false);
  t.equal(notifications(), 0);
  dev.setUsedFlags(0);
  vq.add([seg(0x1000, 8)], [], 2);
  t.equal(vq.kick(), true);
  t.equal(notifications(), 1);
  dev.setAvailEvent(100);
  vq.add([seg(0x1000, 8)], [], 3);
  t.equal(vq.kick(), true, 'avail_event is ignored without EVENT_IDX');
});

void t.test('with EVENT_IDX, kick follows (u16)(new - event - 1) < (u16)(new - old)', async (t) => {
  const { vq, dev, notifications } = setup(8, { eventIdx: true });
  dev.setUsedFlags(UsedFlag.NO_NOTIFY); // must be ignored with EVENT_IDX
  let random = 12345;
  const next = (n: number): number => (random = (random * 1103515245 + 12345) >>> 0) % n;
  let old = 0;
  let added = 0;
  let expected = 0;
  let wrong = 0;
  for (let round = 0; round < 25_000; round++) {
    const adds = 1 + next(5);
    const event = (old + next(9) - 2) & 0xffff; // around the window, sometimes behind it
    dev.setAvailEvent(event);
    for (let i = 0; i < adds; i++) vq.add([seg(0x1000, 8)], [], i);
    added += adds;
    const now = (old + adds) & 0xffff;
    const want = ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
    if (vq.kick() !== want) wrong++;
    if (want) expected++;
    old = now;
    for (const c of dev.takeAll()) dev.complete(c, 0);
    while (vq.popUsed());
  }
  t.equal(wrong, 0, 'kick agreed with the spec rule every time');
  t.equal(notifications(), expected);
  t.ok(added > 0x10000, `the avail index crossed the 16-bit wrap (${added} chains)`);
});

void t.test('used-buffer notifications: avail->flags without EVENT_IDX (§2.7.7)', async (t) => {
  const { vq, dev } = setup(8);
  t.equal(dev.availFlags, 0, 'interrupts are wanted from the start');
  vq.disableInterrupts();
  t.equal(dev.availFlags, AvailFlag.NO_INTERRUPT);
  t.equal(vq.enableInterrupts(), true);
  t.equal(dev.availFlags, 0);
  vq.add([seg(0x1000, 8)], [], 1);
  vq.disableInterrupts();
  const [c] = dev.takeAll();
  dev.complete(c!, 0);
  t.equal(vq.enableInterrupts(), false, 'a used buffer arrived while disabled: poll again');
  t.same(vq.popUsed(), { token: 1, len: 0 });
});

void t.test('used-buffer notifications: used_event with EVENT_IDX (§2.7.7)', async (t) => {
  const { vq, dev } = setup(8, { eventIdx: true });
  for (let i = 0; i < 3; i++) vq.add([seg(0x1000, 8)], [], i);
  for (const c of dev.takeAll()) dev.complete(c, 0);
  t.equal(dev.usedEvent, 0);
  vq.popUsed();
  vq.popUsed();
  t.equal(dev.usedEvent, 2, 'while enabled, used_event follows the next used element');
  vq.disableInterrupts();
  t.equal(dev.availFlags, 0, 'flags stay 0 with EVENT_IDX');
  t.equal(dev.usedEvent, 1, 'disabled: the event index lies 2^16 - 1 elements ahead');
  vq.popUsed();
  t.equal(dev.usedEvent, 1, 'popping while disabled does not re-arm');
  t.equal(vq.enableInterrupts(), true);
  t.equal(dev.usedEvent, 3);
  vq.add([seg(0x1000, 8)], [], 9);
  dev.complete(dev.takeAll()[0]!, 0);
  t.equal(vq.enableInterrupts(), false);
});

void t.test('a hostile device: each fault has its own code, breaks the queue, and crashes nothing', async (t) => {
  const faults: [string, (s: ReturnType<typeof setup>) => void, string][] = [
    ['used idx jumps past what is in flight', (s) => s.dev.setUsedIdx(3), 'E_DEVICE_USED_INDEX_JUMP'],
    ['used idx runs backwards', (s) => s.dev.setUsedIdx(0xffff), 'E_DEVICE_USED_INDEX_JUMP'],
    ['used id out of range', (s) => s.dev.complete({ id: 1000 }, 0), 'E_DEVICE_BAD_USED_ID'],
    ['used id of a free descriptor', (s) => s.dev.complete({ id: 5 }, 0), 'E_DEVICE_BAD_USED_ID'],
    ['used id of a descriptor inside a chain', (s) => s.dev.complete({ id: 1 }, 0), 'E_DEVICE_BAD_USED_ID'],
    ['the same chain returned twice', (s) => { s.dev.complete({ id: 0 }, 0); s.dev.complete({ id: 0 }, 0); s.vq.popUsed(); }, 'E_DEVICE_BAD_USED_ID'],
    ['used len beyond the writable bytes', (s) => s.dev.complete({ id: 0 }, 65), 'E_DEVICE_BAD_USED_LEN'],
  ];
  for (const [what, misbehave, expected] of faults) {
    const s = setup(8);
    s.vq.add([seg(0x1000, 8)], [seg(0x2000, 64)], 1); // descriptors 0 and 1
    s.vq.add([seg(0x3000, 8)], [], 2); // descriptor 2
    s.vq.kick();
    s.dev.takeAll();
    misbehave(s);
    let error: unknown;
    try {
      s.vq.popUsed();
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof VirtqueueError, `${what}: a VirtqueueError`);
    const e = error as VirtqueueError;
    t.equal(e.code, expected, `${what}: ${expected}`);
    t.ok(e.device && e.queue === QUEUE_INDEX, `${what}: blames the device, names queue ${QUEUE_INDEX}`);
    t.equal(s.vq.broken, e, `${what}: the queue is broken`);
    t.equal(codeOf(() => s.vq.popUsed()), expected, `${what}: popUsed keeps throwing the fault`);
    t.equal(codeOf(() => s.vq.add([seg(0x1000, 8)], [], 3)), 'E_QUEUE_BROKEN', `${what}: add refuses`);
    t.equal(s.vq.kick(), false);
    const left = s.vq.fail(e).sort();
    t.ok(left.length >= 1 && left.every((x) => x === 1 || x === 2), `${what}: fail() hands back the chains in flight`);
  }
});

void t.test('reset forgets chains in flight, zeroes the rings and restarts at index 0', async (t) => {
  const { dma, vq, dev } = setup(8, { indirect: true }, 3);
  vq.add([seg(0x1000, 8)], [seg(0x2000, 100)], 1);
  vq.add(segs(3, 0x10000), segs(2, 0x20000, 50), 2);
  vq.add([seg(0x3000, 8)], [], 3);
  dev.complete(dev.takeAll()[2]!, 0);
  t.same(vq.popUsed(), { token: 3, len: 0 });
  const state = vq.exportState();
  t.same(state, {
    layout: 'split',
    size: 8,
    addresses: { desc: `0x${vq.addresses.desc.toString(16)}`, driver: `0x${vq.addresses.driver.toString(16)}`, device: `0x${vq.addresses.device.toString(16)}` },
    nextAvail: 3,
    lastUsed: 1,
    inFlight: [{ id: 0, descs: 2, writable: 100 }, { id: 2, descs: 1, writable: 100 }],
  });
  t.same(vq.inFlightTokens().sort(), [1, 2]);
  t.same(vq.reset().sort(), [1, 2]);
  t.equal(vq.inFlight, 0);
  t.equal(vq.numFree, 8);
  const ringBytes = Number(vq.addresses.device - vq.addresses.desc) + 6 + 8 * 8;
  t.ok(dma.view(vq.addresses.desc, ringBytes).every((b) => b === 0), 'ring memory is zero');
  t.same({ nextAvail: vq.exportState().nextAvail, lastUsed: vq.exportState().lastUsed }, { nextAvail: 0, lastUsed: 0 });
  const fresh = new SplitHandDevice(dma, vq);
  vq.add([seg(0x1000, 8)], [seg(0x2000, 10)], 4);
  fresh.complete(fresh.takeAll()[0]!, 10);
  t.same(vq.popUsed(), { token: 4, len: 10 });
});

void t.test('reset clears a device fault; close frees the ring and refuses everything', async (t) => {
  const { dma, vq, dev } = setup(8);
  vq.add([seg(0x1000, 8)], [], 1);
  dev.setUsedIdx(5);
  t.equal(codeOf(() => vq.popUsed()), 'E_DEVICE_USED_INDEX_JUMP');
  t.same(vq.reset(), [1]);
  t.equal(vq.broken, null);
  vq.add([seg(0x1000, 8)], [], 2);
  vq.close();
  t.equal(dma.lookup(vq.addresses.desc, 16), undefined, 'the ring memory went back to the allocator');
  t.equal(codeOf(() => vq.add([seg(0x1000, 8)], [], 3)), 'E_CLOSED');
  t.equal(codeOf(() => vq.popUsed()), 'E_CLOSED');
  t.equal(codeOf(() => vq.reset()), 'E_CLOSED');
  t.equal(vq.kick(), false);
  t.equal(vq.numFree, 0);
  vq.close();
});

void t.test('property: random interleavings return every token exactly once with its length', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(2, 4, 8, 16),
      fc.boolean(),
      fc.boolean(),
      fc.array(stepArbitrary, { maxLength: 300, size: 'large' }),
      (size, indirect, eventIdx, steps) => {
        const { vq, dev } = setup(size, { indirect, eventIdx });
        runInterleaving(vq, dev, steps);
      },
    ),
    { numRuns: 300 },
  );
  t.pass('300 random runs');
});

// RequestQueue: promises, batching, back-pressure and failure over a virtqueue and a hand device.
import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { VirtqueueError } from '../../lib/errors.js';
import { createVirtqueue, type Layout, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type Completion, type RequestToken } from '../../lib/virtio/request-queue.js';
import { PackedHandDevice, SplitHandDevice, type HandDevice } from '../support/hand-device.js';

function setup(layout: Layout = 'split', size = 4) {
  const dma = new HeapDmaAllocator();
  let notifications = 0;
  let onNotify = (): void => {};
  const vq = createVirtqueue<RequestToken<string>>(layout, {
    index: 1, size, dma,
    features: { indirect: false, eventIdx: false },
    notify: () => { notifications++; onNotify(); },
  });
  const dev: HandDevice = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  return {
    rq: new RequestQueue<string>(vq),
    vq,
    dev,
    notifications: () => notifications,
    onNotify: (f: () => void) => { onNotify = f; },
  };
}

const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });
/** A request the hand device can recognise: its readable segment's address is 0x1000 × n. */
const req = (n: number): [Segment[], Segment[]] => [[seg(0x1000 * n, 8)], [seg(0x100000 + 0x1000 * n, 64)]];
const idOf = (c: { segments: { addr: bigint }[] }): number => Number(c.segments[0]!.addr / 0x1000n);

type Outcome<T> = 'pending' | { ok: T } | { error: unknown };

/** How `p` stands after everything already due has run (handlers attach at once). */
async function state<T>(p: Promise<T>): Promise<Outcome<T>> {
  let outcome: Outcome<T> = 'pending';
  p.then((ok) => { outcome = { ok }; }, (error: unknown) => { outcome = { error }; });
  await new Promise((resolve) => setImmediate(resolve));
  return outcome;
}

const errorCode = (o: Outcome<unknown>): string | undefined =>
  typeof o === 'object' && 'error' in o ? (o.error as VirtqueueError).code : undefined;

void t.test('submit resolves with the token and the length the device wrote', async (t) => {
  const { rq, dev, notifications } = setup();
  const done = rq.submit(...req(1), 'first');
  t.equal(notifications(), 1, 'submit kicks');
  t.equal(await state(done), 'pending');
  t.equal(rq.processUsed(), 0);
  const [c] = dev.takeAll();
  dev.complete(c!, 33);
  t.equal(rq.processUsed(), 1);
  t.same(await done, { len: 33, token: 'first' });
  t.equal(rq.pending, 0);
});

void t.test('submitMany adds every request and kicks once', async (t) => {
  const { rq, dev, notifications } = setup('split', 8);
  const done = rq.submitMany([1, 2, 3, 4].map((n) => ({ readable: req(n)[0], writable: req(n)[1], token: `r${n}` })));
  t.equal(notifications(), 1);
  const chains = dev.takeAll();
  t.same(chains.map(idOf), [1, 2, 3, 4]);
  for (const c of chains.reverse()) dev.complete(c, idOf(c));
  rq.processUsed();
  t.same(await Promise.all(done), [1, 2, 3, 4].map((n) => ({ len: n, token: `r${n}` })));
});

for (const layout of ['split', 'packed'] as const) {
  void t.test(`${layout}: when the ring is full, submitters wait in order and none is dropped`, async (t) => {
    const { rq, vq, dev } = setup(layout, 2);
    const done: Promise<Completion<string>>[] = [];
    for (let n = 1; n <= 7; n++) done.push(rq.submit(...req(n), `r${n}`));
    t.equal(vq.inFlight, 1, 'a 2-descriptor request fills a 2-entry ring');
    t.equal(rq.pending, 7);
    const seen: number[] = [];
    while (seen.length < 7) {
      const chains = dev.takeAll();
      t.ok(chains.length > 0, 'the device always has something to do');
      for (const c of chains) {
        seen.push(idOf(c));
        dev.complete(c, 1);
      }
      rq.processUsed();
    }
    t.same(seen, [1, 2, 3, 4, 5, 6, 7], 'the device saw the requests in submission order');
    t.same((await Promise.all(done)).map((c) => c.token), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
    await rq.drain();
  });
}

void t.test('a request that can never fit is rejected at once and does not block the others', async (t) => {
  const { rq, dev } = setup('split', 2);
  const tooLong = rq.submit([seg(0x1000, 8), seg(0x2000, 8)], [seg(0x3000, 8)], 'long');
  const ok = rq.submit(...req(1), 'ok');
  t.equal(errorCode(await state(tooLong)), 'E_BAD_CHAIN');
  dev.complete(dev.takeAll()[0]!, 0);
  rq.processUsed();
  t.same(await ok, { len: 0, token: 'ok' });
});

void t.test('drain waits for in-flight and waiting requests', async (t) => {
  const { rq, dev } = setup('split', 2);
  t.same(await state(rq.drain()), { ok: undefined }, 'nothing pending: drain resolves at once');
  const a = rq.submit(...req(1), 'a');
  const b = rq.submit(...req(2), 'b'); // waits for room
  const drained = rq.drain();
  dev.complete(dev.takeAll()[0]!, 0);
  rq.processUsed();
  t.equal(await state(drained), 'pending', 'one request still waits');
  dev.complete(dev.takeAll()[0]!, 0);
  rq.processUsed();
  await drained;
  t.same((await Promise.all([a, b])).map((c) => c.token), ['a', 'b']);
});

void t.test('a hostile device rejects every pending and waiting request with its error', async (t) => {
  const { rq, dev } = setup('split', 4);
  const done = [1, 2, 3, 4, 5].map((n) => rq.submit(...req(n), `r${n}`)); // 2 in the ring, 3 waiting
  const drained = state(rq.drain());
  const outcomes = Promise.all(done.map(state));
  const [first] = dev.takeAll();
  dev.complete(first!, 65); // more than the 64 writable bytes
  t.equal(rq.processUsed(), 0);
  t.same((await outcomes).map(errorCode), Array(5).fill('E_DEVICE_BAD_USED_LEN'), 'all five rejected with the device error');
  t.equal(rq.error?.code, 'E_DEVICE_BAD_USED_LEN');
  t.equal(rq.error?.device, true);
  t.equal(errorCode(await drained), 'E_DEVICE_BAD_USED_LEN', 'drain rejects too');
  await t.rejects(rq.submit(...req(6), 'late'), { code: 'E_DEVICE_BAD_USED_LEN' }, 'later submits are rejected at once');
  await t.rejects(rq.drain(), { code: 'E_DEVICE_BAD_USED_LEN' });
  t.equal(rq.pending, 0);
  t.equal(rq.processUsed(), 0);
});

void t.test('fail() rejects everything with the given error', async (t) => {
  const { rq } = setup('packed', 2);
  const outcomes = Promise.all([1, 2, 3].map((n) => state(rq.submit(...req(n), `r${n}`))));
  const error = new VirtqueueError('E_QUEUE_BROKEN', 1, 'transport lost');
  rq.fail(error);
  t.ok((await outcomes).every((o) => typeof o === 'object' && 'error' in o && o.error === error), 'in flight and waiting alike');
  await t.rejects(rq.submit(...req(4)), error);
});

void t.test('startPolling settles requests without anyone calling processUsed', async (t) => {
  const { rq, dev, onNotify } = setup('split', 2);
  // The device answers each notification a little later, as a real one would.
  onNotify(() => setTimeout(() => { for (const c of dev.takeAll()) dev.complete(c, 5); }, 1));
  rq.startPolling();
  const done = [1, 2, 3, 4, 5].map((n) => rq.submit(...req(n), `r${n}`));
  t.same((await Promise.all(done)).map((c) => c.len), [5, 5, 5, 5, 5]);
  rq.stopPolling();
});

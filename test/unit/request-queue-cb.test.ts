// RequestQueue.submitCb / submitManyCb: the callback path (no promise per request) and its error
// paths: every callback is called exactly once, never from inside the submit call; a callback that
// throws does not disturb the queue; a queue that breaks or fails settles every pending callback.
import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { DeviceError, VirtqueueError } from '../../lib/errors.js';
import { createVirtqueue, type Layout, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type RequestToken } from '../../lib/virtio/request-queue.js';
import { PackedHandDevice, SplitHandDevice, type HandDevice } from '../support/hand-device.js';

function setup(layout: Layout = 'split', size = 4) {
  const dma = new HeapDmaAllocator();
  let notifications = 0;
  const vq = createVirtqueue<RequestToken<string>>(layout, {
    index: 1, size, dma,
    features: { indirect: false, eventIdx: false },
    notify: () => { notifications++; },
  });
  const dev: HandDevice = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  return { rq: new RequestQueue<string>(vq), vq, dev, notifications: () => notifications };
}

const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });
const req = (n: number): [Segment[], Segment[]] => [[seg(0x1000 * n, 8)], [seg(0x100000 + 0x1000 * n, 64)]];

/** A callback that records every call: [error code or null, len, token]. */
function recorder() {
  const calls: [string | null, number, string][] = [];
  const cb = (error: Error | null, len: number, token: string): void => {
    calls.push([error ? (error as VirtqueueError).code ?? error.message : null, len, token]);
  };
  return { calls, cb };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

for (const layout of ['split', 'packed'] as const) {
  void t.test(`${layout}: submitCb calls back once with the length and token, submitManyCb kicks once`, async (t) => {
    const { rq, dev, notifications } = setup(layout, 8);
    const { calls, cb } = recorder();
    rq.submitCb(...req(1), 'one', cb);
    t.equal(notifications(), 1, 'submitCb kicks');
    rq.submitManyCb([2, 3, 4].map((n) => ({ readable: req(n)[0], writable: req(n)[1], token: `r${n}` })), cb);
    t.equal(notifications(), 2, 'submitManyCb kicks once for three');
    t.equal(rq.pending, 4);
    t.same(calls, [], 'nothing is called before the device returns a chain');
    const chains = dev.takeAll();
    chains.forEach((c, i) => dev.complete(c, 10 + i));
    t.equal(rq.processUsed(), 4);
    t.same(calls, [[null, 10, 'one'], [null, 11, 'r2'], [null, 12, 'r3'], [null, 13, 'r4']], 'each once, synchronously in processUsed, in used order');
    t.equal(rq.completions, 4);
    t.equal(rq.pending, 0);
  });

  void t.test(`${layout}: a full ring makes callback requests wait in order with promise requests`, async (t) => {
    const { rq, dev } = setup(layout, 2);
    const { calls, cb } = recorder();
    rq.submitCb(...req(1), 'a', cb);
    const b = rq.submit(...req(2), 'b');
    rq.submitCb(...req(3), 'c', cb);
    t.equal(rq.pending, 3);
    const order: string[] = [];
    void b.then((c) => order.push(c.token));
    for (let i = 0; i < 3; i++) {
      dev.complete(dev.takeAll()[0]!, 1);
      rq.processUsed();
      await tick();
      order.push(...calls.splice(0).map((c) => c[2]));
    }
    t.same(order, ['a', 'b', 'c'], 'first come, first served across both APIs');
  });
}

void t.test('a callback that throws: the others are still called once, the queue goes on, the error reaches onCallbackError', async (t) => {
  const { rq, dev } = setup('split', 8);
  const seen: string[] = [];
  const thrown: [unknown, string][] = [];
  rq.onCallbackError = (e, token) => { thrown.push([e, token]); };
  const boom = new Error('boom');
  const cb = (_error: Error | null, _len: number, token: string): void => {
    seen.push(token);
    if (token === 'r2') throw boom;
  };
  rq.submitManyCb([1, 2, 3].map((n) => ({ readable: req(n)[0], writable: req(n)[1], token: `r${n}` })), cb);
  for (const c of dev.takeAll()) dev.complete(c, 1);
  t.equal(rq.processUsed(), 3, 'processUsed does not throw and returns all three');
  t.same(seen, ['r1', 'r2', 'r3'], 'every callback called exactly once');
  t.same(thrown, [[boom, 'r2']], 'the exception and the token reach onCallbackError');
  t.equal(rq.error, null, 'the queue is not broken');
  const { calls, cb: later } = recorder();
  rq.submitCb(...req(4), 'r4', later);
  dev.complete(dev.takeAll()[0]!, 2);
  rq.processUsed();
  t.same(calls, [[null, 2, 'r4']], 'the queue goes on');
});

void t.test('a callback that throws with no handler: a process warning E_CALLBACK_THREW, the queue goes on', async (t) => {
  const { rq, dev } = setup('packed', 4);
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => { warnings.push(w); };
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  rq.submitCb(...req(1), 'x', () => { throw new Error('user bug'); });
  dev.complete(dev.takeAll()[0]!, 1);
  t.equal(rq.processUsed(), 1);
  await tick();
  t.equal(warnings.length, 1, 'one warning');
  t.equal((warnings[0] as VirtqueueError).code, 'E_CALLBACK_THREW');
  t.equal((warnings[0]!.cause as Error).message, 'user bug', 'with the exception as its cause');
  t.equal(rq.pending, 0);
});

void t.test('a throwing onCallbackError is reported as a warning too', async (t) => {
  const { rq, dev } = setup('split', 4);
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => { warnings.push(w); };
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  rq.onCallbackError = () => { throw new Error('handler bug'); };
  rq.submitCb(...req(1), 'x', () => { throw new Error('user bug'); });
  dev.complete(dev.takeAll()[0]!, 1);
  t.equal(rq.processUsed(), 1);
  await tick();
  t.equal((warnings[0]!.cause as Error).message, 'handler bug');
});

void t.test('a device that breaks the ring: every pending callback (in flight and waiting) is called once with the typed error', async (t) => {
  const { rq, dev } = setup('split', 4);
  const { calls, cb } = recorder();
  for (let n = 1; n <= 5; n++) rq.submitCb(...req(n), `r${n}`, cb); // 2 in the ring, 3 waiting
  const [first] = dev.takeAll();
  dev.complete(first!, 65); // more than the 64 writable bytes
  t.equal(rq.processUsed(), 0);
  t.same(calls.map((c) => c[0]), Array(5).fill('E_DEVICE_BAD_USED_LEN'));
  t.same(calls.map((c) => c[2]).sort(), ['r1', 'r2', 'r3', 'r4', 'r5'], 'each exactly once');
  t.ok(calls.every((c) => c[1] === 0), 'len 0 with an error');
  rq.fail(new VirtqueueError('E_QUEUE_BROKEN', 1, 'again'));
  rq.processUsed();
  t.equal(calls.length, 5, 'a second failure calls nobody again');
});

void t.test('a refused submit calls back a microtask later, never inside submitCb', async (t) => {
  const { rq } = setup('packed', 2);
  rq.fail(new VirtqueueError('E_QUEUE_BROKEN', 1, 'transport lost'));
  const { calls, cb } = recorder();
  rq.submitCb(...req(1), 'late', cb);
  t.same(calls, [], 'not from inside submitCb');
  await Promise.resolve();
  t.same(calls, [['E_QUEUE_BROKEN', 0, 'late']]);
  t.equal(rq.pending, 0);
});

void t.test('a malformed chain is refused with E_BAD_CHAIN through the callback and does not block the others', async (t) => {
  const { rq, dev } = setup('split', 2);
  const { calls, cb } = recorder();
  rq.submitCb([seg(0x1000, 8), seg(0x2000, 8)], [seg(0x3000, 8)], 'long', cb);
  rq.submitCb(...req(1), 'ok', cb);
  t.same(calls, [], 'not from inside submitCb');
  await Promise.resolve();
  t.same(calls, [['E_BAD_CHAIN', 0, 'long']]);
  dev.complete(dev.takeAll()[0]!, 3);
  rq.processUsed();
  t.same(calls[1], [null, 3, 'ok']);
});

void t.test('halt then settle (a failed device, and close): every callback once with the device error', async (t) => {
  const { rq, vq, dev } = setup('packed', 4);
  const { calls, cb } = recorder();
  for (let n = 1; n <= 4; n++) rq.submitCb(...req(n), `r${n}`, cb); // 2 in flight, 2 waiting
  const [first] = dev.takeAll();
  dev.complete(first!, 7);
  const error = new DeviceError('E_CLOSED', 'the device was closed');
  rq.halt(error);
  t.equal(rq.processUsed(), 1, 'what the device finished before the reset still completes');
  rq.submitCb(...req(5), 'r5', cb);
  rq.settle(vq.reset(), error);
  rq.settle(vq.reset(), error); // a second settle finds nothing
  await Promise.resolve();
  t.same(calls.map((c) => c[2]).sort(), ['r1', 'r2', 'r3', 'r4', 'r5'], 'each exactly once');
  t.same(calls.find((c) => c[2] === 'r1'), [null, 7, 'r1']);
  t.ok(calls.filter((c) => c[2] !== 'r1').every((c) => c[0] === 'E_CLOSED'), 'the others with the device error');
  t.equal(rq.pending, 0);
});

void t.test('a RequestToken settles once: resolve, reject and settle after the first do nothing', async (t) => {
  const { rq, vq, dev } = setup('split', 4);
  const { calls, cb } = recorder();
  rq.submitCb(...req(1), 'x', cb);
  const [token] = vq.inFlightTokens();
  dev.complete(dev.takeAll()[0]!, 4);
  rq.processUsed();
  token!.reject(new Error('late'));
  token!.resolve({ len: 9, token: 'x' });
  token!.settle(null, 9);
  t.same(calls, [[null, 4, 'x']]);
});

void t.test('kickNow false: available at once, one notification from a microtask for all added in the same run', async (t) => {
  const { rq, dev, notifications } = setup('split', 8);
  const { calls, cb } = recorder();
  for (let n = 1; n <= 3; n++) rq.submitCb(...req(n), `r${n}`, cb, false);
  t.equal(notifications(), 0, 'no notification inside submitCb');
  t.equal((dev as SplitHandDevice).availIdx, 3, 'the chains are available already (a polling device sees them)');
  await Promise.resolve();
  t.equal(notifications(), 1, 'one notification for the three');
  for (const c of dev.takeAll()) dev.complete(c, 1);
  rq.processUsed();
  t.same(calls.map((c) => c[2]), ['r1', 'r2', 'r3']);
  await Promise.resolve();
  t.equal(notifications(), 1, 'nothing added since: no second notification');
});

void t.test('kickNow false: a notification that cannot be sent goes to onFault, or breaks the queue without it', async (t) => {
  for (const withFault of [true, false]) {
    const dma = new HeapDmaAllocator();
    let broken = false;
    const vq = createVirtqueue<RequestToken<string>>('packed', {
      index: 2, size: 4, dma, features: { indirect: false, eventIdx: false },
      notify: () => { if (broken) throw new DeviceError('E_SYSCALL', 'the notify register is gone'); },
    });
    const rq = new RequestQueue<string>(vq);
    const faults: string[] = [];
    if (withFault) rq.onFault = (e) => { faults.push(e.code); };
    broken = true;
    const { calls, cb } = recorder();
    rq.submitCb(...req(1), 'x', cb, false);
    await Promise.resolve();
    await Promise.resolve();
    if (withFault) {
      t.same(faults, ['E_SYSCALL'], 'with onFault: the owner resets the device, then settles');
      t.same(calls, [], 'nothing settled before that');
      t.equal(rq.haltedBy?.code, 'E_SYSCALL');
    } else {
      t.same(calls, [['E_QUEUE_BROKEN', 0, 'x']], 'without: the queue breaks and the request is settled once');
      t.equal(rq.error?.code, 'E_QUEUE_BROKEN');
    }
  }
});

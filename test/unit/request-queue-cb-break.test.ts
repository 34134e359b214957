// RequestQueue's callback and promise paths under misuse and a lost transport: bad arguments are
// typed errors (E_INVALID_ARGUMENT at the call, nothing added; E_BAD_CHAIN through the callback
// for a chain that is not one), and a notification that cannot be sent on a queue without onFault
// never throws — not from submit, not from processUsed (a poll timer or an interrupt handler has
// no caller to throw to) — but breaks the queue, every request settled once with E_QUEUE_BROKEN.
import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { DeviceError, type UvirtioError } from '../../lib/errors.js';
import { createVirtqueue, type Layout, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type CompletionCallback, type RequestSpec, type RequestToken } from '../../lib/virtio/request-queue.js';
import { PackedHandDevice, SplitHandDevice, type HandDevice } from '../support/hand-device.js';

function setup(layout: Layout, size: number) {
  const dma = new HeapDmaAllocator();
  const state = { broken: false, notifications: 0 };
  const vq = createVirtqueue<RequestToken<string>>(layout, {
    index: 3, size, dma,
    features: { indirect: false, eventIdx: false },
    notify: () => {
      if (state.broken) throw new DeviceError('E_SYSCALL', 'the notify register is gone');
      state.notifications++;
    },
  });
  const dev: HandDevice = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  return { rq: new RequestQueue<string>(vq), vq, dev, state };
}

const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });
const req = (n: number): [Segment[], Segment[]] => [[seg(0x1000 * n, 8)], [seg(0x100000 + 0x1000 * n, 64)]];
const spec = (n: number): RequestSpec<string> => ({ readable: req(n)[0], writable: req(n)[1], token: `r${n}` });

function recorder() {
  const calls: [string | null, number, string][] = [];
  const cb: CompletionCallback<string> = (error, len, token) => {
    calls.push([error ? (error as UvirtioError).code ?? `untyped ${error.name}` : null, len, token]);
  };
  return { calls, cb };
}

const microtasks = async (n = 4): Promise<void> => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

for (const layout of ['split', 'packed'] as const) {
  void t.test(`${layout}: bad arguments are E_INVALID_ARGUMENT at the call, and nothing reaches the ring`, async (t) => {
    const { rq, state } = setup(layout, 8);
    const { calls, cb } = recorder();
    const notFn = 'done' as unknown as CompletionCallback<string>;
    t.throws(() => rq.submitCb(...req(1), 'x', notFn), { code: 'E_INVALID_ARGUMENT', message: /callback/ }, 'submitCb: a callback that is not a function');
    t.throws(() => rq.submitManyCb([spec(1)], notFn), { code: 'E_INVALID_ARGUMENT' }, 'submitManyCb: a callback that is not a function');
    t.throws(() => rq.submitManyCb('many' as unknown as RequestSpec<string>[], cb), { code: 'E_INVALID_ARGUMENT' }, 'submitManyCb: not an array');
    t.throws(() => rq.submitManyCb([spec(1), null as unknown as RequestSpec<string>, spec(3)], cb), { code: 'E_INVALID_ARGUMENT', message: /\[1\]/ },
      'submitManyCb: a request that is not an object, midway');
    t.throws(() => rq.submitMany(undefined as unknown as RequestSpec<string>[]), { code: 'E_INVALID_ARGUMENT' }, 'submitMany: not an array');
    t.throws(() => rq.submitMany([spec(1), 7 as unknown as RequestSpec<string>]), { code: 'E_INVALID_ARGUMENT', message: /got 7$/ }, 'submitMany: a request that is not an object, shown by value');
    // Array.isArray throws a TypeError for a revoked Proxy: the check must not (the kind the listener fixes found).
    const { proxy, revoke } = Proxy.revocable([spec(1)], {});
    revoke();
    t.throws(() => rq.submitMany(proxy), { code: 'E_INVALID_ARGUMENT', message: /got an object/ }, 'submitMany: a revoked Proxy, E_INVALID_ARGUMENT rather than a TypeError');
    t.throws(() => rq.submitManyCb(proxy, cb), { code: 'E_INVALID_ARGUMENT' }, 'submitManyCb: the same');
    t.equal(rq.pending, 0, 'nothing was added: no partial batch');
    t.equal(rq.vq.inFlight, 0);
    await microtasks();
    t.equal(state.notifications, 0);
    t.same(calls, [], 'and no callback is ever called for a refused call');
    // The queue is unharmed.
    rq.submitCb(...req(4), 'ok', cb);
    t.equal(rq.pending, 1);
  });

  void t.test(`${layout}: a chain that is not one is E_BAD_CHAIN through the callback or the promise, never a TypeError`, async (t) => {
    const { rq, dev } = setup(layout, 8);
    const { calls, cb } = recorder();
    const notArray = undefined as unknown as Segment[];
    rq.submitCb(notArray, req(1)[1], 'no-readable', cb);
    rq.submitCb(req(2)[0], 'seg' as unknown as Segment[], 'string-writable', cb);
    rq.submitCb([null as unknown as Segment], req(3)[1], 'null-segment', cb);
    rq.submitManyCb([{ readable: req(4)[0], writable: notArray, token: 'many' }], cb);
    const p = rq.submit(notArray, notArray, 'promise');
    t.same(calls, [], 'never from inside the submit call');
    await t.rejects(p, { code: 'E_BAD_CHAIN' });
    await microtasks();
    t.same(calls, [
      ['E_BAD_CHAIN', 0, 'no-readable'], ['E_BAD_CHAIN', 0, 'string-writable'], ['E_BAD_CHAIN', 0, 'null-segment'], ['E_BAD_CHAIN', 0, 'many'],
    ], 'each once, typed');
    t.equal(rq.pending, 0);
    rq.submitCb(...req(5), 'ok', cb);
    dev.complete(dev.takeAll()[0]!, 5);
    rq.processUsed();
    t.same(calls.at(-1), [null, 5, 'ok'], 'the queue goes on');
  });

  void t.test(`${layout}: without onFault, a notification that cannot be sent never throws; the queue breaks, each request once`, async (t) => {
    const { rq, state } = setup(layout, 8);
    const { calls, cb } = recorder();
    state.broken = true;
    t.doesNotThrow(() => rq.submitCb(...req(1), 'cb', cb), 'submitCb does not throw');
    let p: Promise<unknown> | undefined;
    t.doesNotThrow(() => { p = rq.submit(...req(2), 'promise'); }, 'submit does not throw (its promise would be lost, and reject unhandled later)');
    let many: Promise<unknown>[] = [];
    t.doesNotThrow(() => { many = rq.submitMany([spec(3)]); }, 'submitMany does not throw');
    t.doesNotThrow(() => rq.submitManyCb([spec(4)], cb), 'submitManyCb does not throw');
    t.same(calls, [], 'nothing settled from inside the submit calls');
    await t.rejects(p!, { code: 'E_QUEUE_BROKEN' });
    await t.rejects(many[0]!, { code: 'E_QUEUE_BROKEN' });
    await microtasks();
    t.same(calls, [['E_QUEUE_BROKEN', 0, 'cb'], ['E_QUEUE_BROKEN', 0, 'r4']], 'each callback once with the typed error');
    t.equal(rq.error?.code, 'E_QUEUE_BROKEN');
    t.match(rq.error?.message, /notification could not be sent/);
    t.equal(rq.pending, 0);
  });

  void t.test(`${layout}: without onFault, a failed notification when room frees up (processUsed from a poll or an interrupt) does not throw`, async (t) => {
    const { rq, dev, state } = setup(layout, 4); // two-descriptor chains: two fit
    const { calls, cb } = recorder();
    for (let n = 1; n <= 4; n++) rq.submitCb(...req(n), `r${n}`, cb); // 2 in flight, 2 waiting for room
    const chains = dev.takeAll();
    t.equal(chains.length, 2);
    chains.forEach((c) => dev.complete(c, 9));
    state.broken = true;
    let returned = -1;
    t.doesNotThrow(() => { returned = rq.processUsed(); }, 'processUsed has no caller to throw to');
    t.equal(returned, 2);
    await microtasks();
    t.same(calls.slice(0, 2), [[null, 9, 'r1'], [null, 9, 'r2']]);
    t.same(calls.slice(2).map((c) => c[0]), ['E_QUEUE_BROKEN', 'E_QUEUE_BROKEN'], 'the admitted ones once with the typed error');
    t.same(calls.map((c) => c[2]).sort(), ['r1', 'r2', 'r3', 'r4'], 'each exactly once');
    t.equal(rq.pending, 0);
  });
}

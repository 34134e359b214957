// A hostile or broken back-end never hangs the front-end: each fault ends within a bounded time
// with its own code (E_VHOST_TIMEOUT, _PROTOCOL, _LOST, _REFUSED, _BUSY), and a driver on top
// never strands a request — every one submitted settles. The back-end is the in-process fake
// (fake-backend.ts); reply timeouts are 300 ms here, and every await is watched by a generous
// bound so that a hang fails the test with what it was waiting for instead of stalling the tier.
import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Flag, Req } from '../../lib/transport/vhost-user/protocol.js';
import { Status } from '../../lib/spec/index.js';
import { isUvirtioError } from '../../lib/errors.js';
import { codeOfAsync } from '../support/codes.js';
import { FakeBackend, header, reply, u64, type Action, type FakeOptions, type Received } from './fake-backend.js';

/** Options every case opens the fake with: answers within 300 ms, a stop drains for 300 ms at most. */
const FAST = '?timeout=300&drain=300';
/** Far above every bound the cases configure: reaching it means something waits for good. */
const WATCHDOG_MS = 15_000;

async function fake(t: Test, o: FakeOptions): Promise<FakeBackend> {
  const f = await FakeBackend.start(o);
  t.teardown(() => f.close());
  return f;
}

/** p's outcome, or 'stalled' after the watchdog bound. */
async function watched<T>(p: Promise<T>): Promise<T | 'stalled'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'stalled'>((r) => (timer = setTimeout(() => r('stalled'), WATCHDOG_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The codes the requests settled with ('no error' for success), or 'stalled' if any is still pending at the bound. */
function settled(requests: Promise<unknown>[]): Promise<string[] | 'stalled'> {
  return watched(Promise.all(requests.map((r) => codeOfAsync(r))));
}

const on = (request: number, action: Action) => (m: Received): Action | undefined => (m.request === request ? action : undefined);
const raw = (...parts: Buffer[]): Action => ({ kind: 'raw', bytes: Buffer.concat(parts) });
/** Silent from the first `request` on (what comes after it too), per connection. */
function silentFrom(request: number): (m: Received, conn: number) => Action | undefined {
  const mute = new Set<number>();
  return (m, conn) => {
    if (m.request === request) mute.add(conn);
    return mute.has(conn) ? { kind: 'silent' } : undefined;
  };
}

// ---- during the handshake: openTransport rejects ----

const handshakeCases: { name: string; o: FakeOptions; code: string }[] = [
  { name: 'never answers GET_FEATURES', o: { script: on(Req.GET_FEATURES, { kind: 'silent' }) }, code: 'E_VHOST_TIMEOUT' },
  { name: 'accepts the connection but never serves it (busy with another front-end)', o: { neverServe: true }, code: 'E_VHOST_BUSY' },
  { name: 'hangs up at GET_FEATURES', o: { script: on(Req.GET_FEATURES, { kind: 'hangup' }) }, code: 'E_VHOST_LOST' },
  { name: 'answers with version 2', o: { script: on(Req.GET_FEATURES, raw(header(Req.GET_FEATURES, 0x2 | Flag.REPLY, 8), u64(1n))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers without the reply flag', o: { script: on(Req.GET_FEATURES, raw(header(Req.GET_FEATURES, Flag.VERSION, 8), u64(1n))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers another request', o: { script: on(Req.GET_FEATURES, raw(reply(Req.GET_PROTOCOL_FEATURES, u64(0n)))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers a message that had no answer due (SET_OWNER)', o: { script: on(Req.SET_OWNER, raw(reply(Req.SET_OWNER, u64(0n)))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'claims a payload far too big', o: { script: on(Req.GET_FEATURES, raw(header(Req.GET_FEATURES, Flag.VERSION | Flag.REPLY, 1 << 20))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers a u64 with 4 bytes', o: { script: on(Req.GET_FEATURES, raw(reply(Req.GET_FEATURES, Buffer.alloc(4)))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers a u64 with 16 bytes', o: { script: on(Req.GET_FEATURES, raw(reply(Req.GET_FEATURES, Buffer.alloc(16)))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers GET_CONFIG with a length that matches nothing asked', o: { script: on(Req.GET_CONFIG, raw(reply(Req.GET_CONFIG, Buffer.alloc(12 + 10)))) }, code: 'E_VHOST_PROTOCOL' },
  { name: 'answers GET_CONFIG with no payload (its way to refuse)', o: { script: on(Req.GET_CONFIG, raw(header(Req.GET_CONFIG, Flag.VERSION | Flag.REPLY, 0))) }, code: 'E_VHOST_REFUSED' },
  { name: 'sends half an answer, then nothing', o: { script: on(Req.GET_FEATURES, raw(header(Req.GET_FEATURES, Flag.VERSION | Flag.REPLY, 8), Buffer.alloc(4))) }, code: 'E_VHOST_TIMEOUT' },
  { name: 'answers GET_QUEUE_NUM with 0 queues', o: { script: on(Req.GET_QUEUE_NUM, raw(reply(Req.GET_QUEUE_NUM, u64(0n)))) }, code: 'E_VHOST_PROTOCOL' },
];

for (const c of handshakeCases) {
  t.test(`a back-end that ${c.name}: open rejects with ${c.code}`, async (t) => {
    const f = await fake(t, c.o);
    const order: string[] = [];
    const tick = setTimeout(() => order.push('a 20 ms timer'), 20);
    const e = await watched(openTransport(`${f.address}${FAST}`).then(() => null, (x: unknown) => x));
    clearTimeout(tick);
    order.push('open settled');
    t.not(e, 'stalled', 'open settled');
    t.equal(isUvirtioError(e) && e.code, c.code, isUvirtioError(e) ? e.message : String(e));
    t.ok(isUvirtioError(e) && e.hint, 'with a hint');
    if (c.code === 'E_VHOST_TIMEOUT' || c.code === 'E_VHOST_BUSY') {
      t.match(isUvirtioError(e) && e.message, /300 ms/, 'the bound is named');
      // A wait on the main thread would have run the timer only after the open settled.
      t.same(order, ['a 20 ms timer', 'open settled'], 'the event loop ran while the front-end waited');
    }
    if (c.code === 'E_VHOST_BUSY') t.match(isUvirtioError(e) && e.hint, /qemu-storage-daemon serves one front-end at a time/);
  });
}

// ---- during set-up: BlkDriver.open rejects (the flush after FEATURES_OK, or driverOk) ----

const setupCases: { name: string; script: (m: Received, conn: number) => Action | undefined; code: string }[] = [
  { name: 'refuses SET_FEATURES (REPLY_ACK 1): FEATURES_OK does not stick', script: on(Req.SET_FEATURES, { kind: 'ack', status: 1n }), code: 'E_FEATURES_NOT_OK' },
  { name: 'refuses SET_MEM_TABLE (REPLY_ACK 22)', script: on(Req.SET_MEM_TABLE, { kind: 'ack', status: 22n }), code: 'E_VHOST_REFUSED' },
  { name: 'refuses SET_VRING_ADDR', script: on(Req.SET_VRING_ADDR, { kind: 'ack', status: 1n }), code: 'E_VHOST_REFUSED' },
  { name: 'stops answering at SET_MEM_TABLE', script: silentFrom(Req.SET_MEM_TABLE), code: 'E_VHOST_TIMEOUT' },
  {
    name: 'acknowledges out of order (SET_VRING_NUM before SET_MEM_TABLE)',
    script: (m) => (m.request === Req.SET_MEM_TABLE ? { kind: 'silent' } : undefined), // SET_VRING_NUM's ack then comes first
    code: 'E_VHOST_PROTOCOL',
  },
  { name: 'hangs up at SET_VRING_KICK', script: on(Req.SET_VRING_KICK, { kind: 'hangup' }), code: 'E_VHOST_LOST' },
];

for (const c of setupCases) {
  t.test(`a back-end that ${c.name}: BlkDriver.open rejects with ${c.code}`, async (t) => {
    const f = await fake(t, { script: c.script });
    const dev = await openTransport(`${f.address}${FAST}`);
    t.teardown(() => dev.transport.close());
    const e = await watched(BlkDriver.open(dev.transport).then(() => null, (x: unknown) => x));
    t.not(e, 'stalled', 'open settled');
    t.equal(isUvirtioError(e) && e.code, c.code, isUvirtioError(e) ? e.message : String(e));
    if (c.code === 'E_FEATURES_NOT_OK') t.equal(dev.transport.readStatus() & Status.FEATURES_OK, 0, 'readStatus() shows FEATURES_OK clear, as a device would');
  });
}

// ---- while live, with requests in flight (the fake never completes any) ----

async function liveDriver(t: Test, o: FakeOptions): Promise<{ f: FakeBackend; blk: BlkDriver; requests: Promise<unknown>[] }> {
  const f = await fake(t, o);
  const dev = await openTransport(`${f.address}${FAST}`);
  const blk = await BlkDriver.open(dev.transport, { depth: 8 });
  t.teardown(() => blk.close());
  const requests = Array.from({ length: 6 }, (_, i) => blk.write(i * 8, new Uint8Array(512).fill(i + 1)));
  await new Promise((r) => setTimeout(r, 20));
  return { f, blk, requests };
}

t.test('the back-end dies with requests in flight: every request rejects with E_VHOST_LOST', async (t) => {
  const { f, blk, requests } = await liveDriver(t, {});
  f.hangUpAll();
  const codes = await settled(requests);
  t.same(codes, requests.map(() => 'E_VHOST_LOST'), 'every request settled with E_VHOST_LOST');
  t.equal(await codeOfAsync(blk.read(0, 1)), 'E_VHOST_LOST', 'a later request is rejected at once');
  t.equal(blk.device.failure?.code, 'E_VHOST_LOST', 'the device failed with E_VHOST_LOST (it needs a reset)');
  t.equal(await codeOfAsync(watched(blk.close())), 'no error', 'close() after the loss does not throw');
});

t.test('the back-end dies with nothing in flight: the loss is noticed at once, the next request is E_VHOST_LOST', async (t) => {
  const f = await fake(t, {});
  const dev = await openTransport(`${f.address}${FAST}`);
  const blk = await BlkDriver.open(dev.transport);
  t.teardown(() => blk.close());
  const lost = new Promise<string>((r) => blk.device.onFailure((e) => r(e.code)));
  f.hangUpAll();
  t.equal(await watched(lost), 'E_VHOST_LOST', 'onFailure listeners heard E_VHOST_LOST');
  t.equal(await codeOfAsync(watched(blk.write(0, new Uint8Array(512)))), 'E_VHOST_LOST');
});

t.test('an unsolicited message with requests in flight: every request rejects with E_VHOST_PROTOCOL', async (t) => {
  const { f, requests } = await liveDriver(t, {});
  f.sendUnsolicited(reply(Req.GET_FEATURES, u64(0n)));
  t.same(await settled(requests), requests.map(() => 'E_VHOST_PROTOCOL'));
});

const stopCases: { name: string; script: (m: Received) => Action | undefined; code: string }[] = [
  { name: 'never answers GET_VRING_BASE', script: on(Req.GET_VRING_BASE, { kind: 'silent' }), code: 'E_VHOST_TIMEOUT' },
  { name: 'hangs up at GET_VRING_BASE', script: on(Req.GET_VRING_BASE, { kind: 'hangup' }), code: 'E_VHOST_LOST' },
  {
    name: 'answers GET_VRING_BASE for another ring',
    script: on(Req.GET_VRING_BASE, raw(reply(Req.GET_VRING_BASE, Buffer.from([7, 0, 0, 0, 0, 0, 0, 0])))),
    code: 'E_VHOST_PROTOCOL',
  },
];

for (const c of stopCases) {
  t.test(`a back-end that ${c.name} during a stop: the stop and every request reject with ${c.code}`, async (t) => {
    const { blk, requests } = await liveDriver(t, { script: c.script });
    const stop = await watched(codeOfAsync(blk.stop({ mechanism: 'backend' })));
    t.equal(stop, c.code, 'the stop');
    t.same(await settled(requests), requests.map(() => c.code), 'every request settled');
  });
}

t.test('a back-end that fetched requests and never completes them: the stop and every request reject with E_STOP_TIMEOUT', async (t) => {
  // GET_VRING_BASE answers that all 6 were fetched; used->idx never gets there.
  const { blk, requests } = await liveDriver(t, { script: on(Req.GET_VRING_BASE, raw(reply(Req.GET_VRING_BASE, Buffer.from([0, 0, 0, 0, 6, 0, 0, 0])))) });
  t.equal(await watched(codeOfAsync(blk.stop({ mechanism: 'backend' }))), 'E_STOP_TIMEOUT', 'the stop');
  t.same(await settled(requests), requests.map(() => 'E_STOP_TIMEOUT'), 'every request settled');
  t.equal(blk.device.phase, 'needs-reset', 'the session is over: the device needs a reset (recover())');
});

// Breaker 30: a back-end that writes the used ring after it answered GET_VRING_BASE (it said the
// ring is stopped). Two reads: the back-end completes the first, leaves the second unfetched
// (GET_VRING_BASE answers avail 1: legal, the second is carried in the snapshot), and the 'backend'
// stop succeeds. Then it moves used->idx backwards (1 → 0) and signals the call eventfd. The front-end
// notices at once: device.failure becomes E_DEVICE_USED_INDEX_JUMP and new requests are refused with
// it. Breaker 30 expected the second read to settle then, while the device is stopped; but a stop
// holds what is pending for the reinit or resume that follows (the snapshot carries the unfetched
// read to a target), so it waits, and the fault is acted on at resume(): the device is reset and
// the read rejected with the fault's code; a one-way stop ('backend' here) ends in a reinit (the
// device reset, the read carried on from the state taken at the stop) or a close (README "Failure
// semantics", the row for a ring broken while stopped). The close path is what this test holds to.
// The back-end half is the in-process fake plus direct writes into the shared arena (the fake
// cannot map the memfd: Node drops SCM_RIGHTS; it is the same memory in this process).
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import * as libc from '../../lib/sys/libc.js';
import { codeOfAsync } from '../support/codes.js';
import { FakeBackend, reply } from './fake-backend.js';
import type { MemfdArena } from '../../lib/transport/vhost-user/arena.js';
import type { RingConf } from '../../lib/transport/vhost-user/rings.js';

const BOUND_MS = 3000;

t.test('used->idx moved backwards after GET_VRING_BASE: the request still pending settles with the fault', async (t) => {
  const base = Buffer.from([0, 0, 0, 0, 1, 0, 0, 0]); // ring 0, next available index 1
  const f = await FakeBackend.start({ script: (m) => (m.request === Req.GET_VRING_BASE ? { kind: 'raw', bytes: reply(Req.GET_VRING_BASE, base) } : undefined) });
  t.teardown(() => f.close());
  const dev = await openTransport(`${f.address}?timeout=2000&drain=1000`);
  const blk = await BlkDriver.open(dev.transport, { depth: 4 });
  t.teardown(() => blk.close());
  const inside = dev.transport as unknown as { queues: Map<number, RingConf>; callFds: Map<number, number>; dma: MemfdArena };
  const conf = inside.queues.get(0)!;
  const arena = inside.dma;
  const callFd = inside.callFds.get(0)!;
  const view = (iova: bigint, len: number): DataView => {
    const b = arena.view(iova, len);
    return new DataView(b.buffer, b.byteOffset, b.length);
  };
  const desc = view(conf.desc, 16 * conf.size);
  const avail = view(conf.driver, 4 + 2 * conf.size);
  const used = view(conf.device, 4 + 8 * conf.size);

  const first = codeOfAsync(blk.read(0, 1));
  const second = codeOfAsync(blk.read(8, 1));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(avail.getUint16(2, true), 2, 'both reads made available');

  // The back-end completes the first chain: status OK in its last descriptor, one used element.
  const head = avail.getUint16(4, true);
  let d = head;
  let written = 0;
  while (desc.getUint16(16 * d + 12, true) & 1) {
    if (desc.getUint16(16 * d + 12, true) & 2) written += desc.getUint32(16 * d + 8, true);
    d = desc.getUint16(16 * d + 14, true);
  }
  arena.view(desc.getBigUint64(16 * d, true), 1)[0] = 0;
  used.setUint32(4, head, true);
  used.setUint32(8, written + 1, true);
  used.setUint16(2, 1, true);
  libc.eventfdSignal(callFd);
  t.equal(await first, 'no error', 'the first read completed');

  t.equal(await codeOfAsync(blk.stop({ mechanism: 'backend', timeoutMs: 2000 })), 'no error', 'the stop succeeded (the second read never fetched)');

  // After the stop: used->idx runs backwards, and the back-end signals.
  used.setUint16(2, 0, true);
  libc.eventfdSignal(callFd);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(blk.device.failure?.code, 'E_DEVICE_USED_INDEX_JUMP', 'the fault is known: device.failure');
  t.equal(await codeOfAsync(blk.read(16, 1)), 'E_DEVICE_USED_INDEX_JUMP', 'a new request is refused with it');

  const early = await Promise.race([second, new Promise<string>((r) => setTimeout(() => r('still pending'), 200))]);
  t.equal(early, 'still pending', 'while stopped the unfetched read waits (a reinit would carry it)');
  t.equal(blk.device.phase, 'stopped');

  // The 'backend' stop is one-way: what follows is a reinit (which resets the device and carries the
  // read on from the state taken at the stop) or a close; close() settles it at once.
  const closing = blk.close();
  const outcome = await Promise.race([second, new Promise<string>((r) => setTimeout(() => r('still pending'), BOUND_MS))]);
  await closing;
  t.comment(`device phase ${blk.device.phase}; the second read: ${outcome}`);
  t.equal(outcome, 'E_CLOSED', `close() settled the pending read within ${BOUND_MS} ms`);
});

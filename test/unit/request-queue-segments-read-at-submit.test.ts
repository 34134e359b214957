// Breaker: the last change reads a batch once (readRequests) and a chain once per add
// (checkChain), "so what was checked is what is submitted". But a RequestQueue request keeps the
// caller's segment arrays and hands them to Virtqueue.add() later, as often as it is added: when
// it waited for room (a full ring, or a queue paused by stop), and again when a restarted ring
// forgot it (repost() after reinit / recover). A caller that reuses its segment array once
// submit() returned — nothing in submit()'s contract says not to — has a different chain made
// available than the one it submitted; a chain the device already saw with one set of buffers is
// made available again with others. Expected: the chain is the one submitted (segments copied
// at submit, or read once at first add and kept), whichever add makes it available.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { SplitVirtqueue, type Segment } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type RequestToken } from '../../lib/virtio/request-queue.js';
import { SplitHandDevice } from '../support/hand-device.js';

function setup(size: number) {
  const dma = new HeapDmaAllocator();
  const vq = new SplitVirtqueue<RequestToken<string>>({ index: 0, size, dma, features: { indirect: false, eventIdx: false }, notify: () => undefined });
  return { dma, vq, rq: new RequestQueue<string>(vq), dev: new SplitHandDevice(dma, vq as never) };
}
const seg = (addr: number, len: number): Segment => ({ addr: BigInt(addr), len });

t.test('a request that waited for room is made available with the segments it was submitted with', async (t) => {
  const { rq, dev } = setup(2);
  const first = rq.submit([seg(0x1000, 8), seg(0x1100, 8)], [], 'a'); // fills the ring
  const scratch = [seg(0x2000, 8)];
  const second = rq.submit(scratch, [], 'b'); // waits: the ring is full
  scratch[0] = seg(0x9000, 99); // the caller reuses its array once submit() returned
  const [a] = dev.takeAll();
  dev.complete(a!, 0);
  rq.processUsed();
  await first;
  const [b] = dev.takeAll();
  t.same(b?.segments.map((s) => [s.addr, s.len]), [[0x2000n, 8]], 'the device sees the chain submitted, not the array as it is now');
  dev.complete(b!, 0);
  rq.processUsed();
  await second;
});

t.test('a chain a reset ring forgot is made available again as it was the first time', async (t) => {
  const { dma, vq, rq, dev } = setup(4);
  const scratch = [seg(0x2000, 8)];
  const p = rq.submit(scratch, [], 'b');
  const [once] = dev.takeAll();
  t.same(once?.segments.map((s) => [s.addr, s.len]), [[0x2000n, 8]]);
  scratch[0] = seg(0x9000, 99);
  // What QueueSet does for a reinit/recover whose ring restarted: the ring forgets, the requests are posted again.
  rq.pause();
  const forgotten = vq.reset();
  rq.repost(forgotten);
  rq.resume();
  const [again] = new SplitHandDevice(dma, vq as never).takeAll(); // the device after its reset
  t.same(again?.segments.map((s) => [s.addr, s.len]), [[0x2000n, 8]], 'the same chain, not the caller\'s array as changed since');
  void p.catch(() => undefined);
});

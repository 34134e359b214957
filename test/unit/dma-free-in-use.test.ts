// DmaAllocator.free() of memory a live virtqueue still uses is refused DmaError E_DMA_IN_USE,
// nothing freed: (a) a buffer a chain in flight points at — directly or through an indirect table,
// any byte of it (a region only part of which the chain uses) — until the chain is used; (b) the
// queue's ring while the queue is open; (c) its indirect tables while it is open. Split and packed,
// direct and indirect, against a device driven by hand (test/support/hand-device.ts). The queue
// scans its chains in flight at free() time: the packed ring keeps each descriptor's addr/len
// beside the ring (a used descriptor overwrites its slot, which may hold a descriptor of another
// chain still in flight), the split ring reads its descriptor table, which only the driver writes.
// The sim-level case is test/sim/dma-free-of-region-in-ring-blames-device.test.ts.
import t from 'tap';
import { HeapDmaAllocator, type DmaRegion } from '../../lib/mem/dma.js';
import { FreeGuards } from '../../lib/mem/free-guards.js';
import { createVirtqueue, type Virtqueue } from '../../lib/virtio/queue/index.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { PackedHandDevice, SplitHandDevice } from '../support/hand-device.js';
import { codeOf } from '../support/codes.js';

const QUEUE_INDEX = 3;

/** A heap allocator that remembers what it handed out, in order (the queue's ring comes first). */
class RecordingDma extends HeapDmaAllocator {
  readonly handedOut: DmaRegion[] = [];
  override alloc(size: number, align?: number): DmaRegion {
    const r = super.alloc(size, align);
    this.handedOut.push(r);
    return r;
  }
}

function setup(layout: Layout, indirect: boolean, size = 8) {
  const dma = new RecordingDma();
  const vq: Virtqueue<number> = createVirtqueue<number>(layout, {
    index: QUEUE_INDEX, size, dma, features: { indirect, eventIdx: false }, notify: () => {},
  });
  const dev = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  return { dma, vq, dev, ring: dma.handedOut[0]! };
}

/** What free() threw: its code and message ('no error' when it freed). */
function freeing(dma: HeapDmaAllocator, r: DmaRegion): { code: string; message: string } {
  try {
    dma.free(r);
    return { code: 'no error', message: '' };
  } catch (e) {
    const { code, message } = e as { code?: string; message?: string };
    return { code: code ?? `foreign: ${String(e)}`, message: message ?? '' };
  }
}

for (const layout of ['split', 'packed'] as const) {
  for (const indirect of [false, true]) {
    const how = indirect ? 'indirect' : 'direct';

    t.test(`${layout}, ${how}: a buffer in flight is refused E_DMA_IN_USE until its chain is used`, async (t) => {
      const { dma, vq, dev } = setup(layout, indirect);
      const hdr = dma.alloc(4096);
      const data = dma.alloc(8192);
      const spare = dma.alloc(4096);
      // Only 512 bytes in the middle of `data` are in the chain: a partial overlap still counts.
      vq.add([{ addr: hdr.iova, len: 16 }], [{ addr: data.iova + 2048n, len: 512 }, { addr: hdr.iova + 16n, len: 1 }], 7);
      const [chain] = dev.takeAll();
      t.equal(chain!.indirect, indirect, `the chain went into the ring ${how}`);
      for (const [name, r, len] of [['the data region', data, 512], ['the header region', hdr, 16]] as const) {
        const { code, message } = freeing(dma, r);
        t.equal(code, 'E_DMA_IN_USE', `${name}: refused`);
        t.match(message, new RegExp(`chain ${chain!.id} in flight on queue ${QUEUE_INDEX} uses 0x[0-9a-f]+\\+(${len}|1) of it${indirect ? ' \\(through an indirect table\\)' : ''}`), `${name}: names the queue and the chain`);
        t.equal(dma.lookup(r.iova, r.size), r, `${name}: nothing freed`);
      }
      t.equal(freeing(dma, { iova: data.iova, size: data.size, bytes: data.bytes }).code, 'E_DMA_IN_USE', 'an exact copy of the region is refused too');
      t.equal(freeing(dma, spare).code, 'no error', 'a region no chain uses is freed');
      dev.complete(chain!, 512);
      t.same(vq.popUsed(), { token: 7, len: 512 });
      t.equal(freeing(dma, data).code, 'no error', 'once used, the data region is freed');
      t.equal(freeing(dma, hdr).code, 'no error', 'and the header region');
      vq.close();
    });

    t.test(`${layout}, ${how}: the ring (and the indirect tables) are refused while the queue is open, freed by close()`, async (t) => {
      const { dma, vq, dev, ring } = setup(layout, indirect);
      const buf = dma.alloc(4096);
      vq.add([{ addr: buf.iova, len: 16 }], [{ addr: buf.iova + 16n, len: 1 }], 1);
      const own = [ring, ...dma.handedOut.slice(2)]; // the ring, then any indirect table slab
      t.equal(own.length, indirect ? 2 : 1, indirect ? 'one indirect slab allocated' : 'no indirect slab');
      for (const c of dev.takeAll()) dev.complete(c, 1);
      t.same(vq.popUsed(), { token: 1, len: 1 });
      t.equal(vq.inFlight, 0, 'nothing in flight');
      const r = freeing(dma, ring);
      t.equal(r.code, 'E_DMA_IN_USE', 'the ring: refused');
      t.match(r.message, `it is the ring itself of queue ${QUEUE_INDEX}, which is open`);
      if (indirect) {
        const s = freeing(dma, own[1]!);
        t.equal(s.code, 'E_DMA_IN_USE', 'an indirect table slab: refused');
        t.match(s.message, `it holds an indirect table of queue ${QUEUE_INDEX}, which is open`);
      }
      for (const o of own) t.equal(dma.lookup(o.iova, o.size), o, 'nothing freed');
      vq.reset();
      t.equal(freeing(dma, ring).code, 'E_DMA_IN_USE', 'a reset queue is still open');
      vq.close();
      for (const o of own) t.equal(dma.lookup(o.iova, 1), undefined, 'close() frees the ring and the tables');
      t.equal(freeing(dma, buf).code, 'no error');
    });

    t.test(`${layout}, ${how}: a chain forgotten by reset(), or a closed queue, no longer holds its buffer`, async (t) => {
      const { dma, vq, dev } = setup(layout, indirect);
      const a = dma.alloc(4096);
      const b = dma.alloc(4096);
      vq.add([{ addr: a.iova, len: 16 }], [{ addr: a.iova + 16n, len: 1 }], 1);
      dev.takeAll();
      t.equal(freeing(dma, a).code, 'E_DMA_IN_USE');
      t.same(vq.reset(), [1]);
      t.equal(freeing(dma, a).code, 'no error', 'reset (the device was reset) forgot the chain');
      vq.add([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 1 }], 2);
      t.equal(freeing(dma, b).code, 'E_DMA_IN_USE');
      vq.close();
      t.equal(freeing(dma, b).code, 'no error', 'a closed queue holds nothing');
    });
  }
}

t.test('packed, out of order: a chain whose ring slots a later chain reused still holds its buffers', async (t) => {
  // Size 4: A takes slots 0-1, B slots 2-3. B is used first, its used descriptor written at slot
  // 0 (A's head: the device read A already); then C is added at slots 0-1 over A's descriptors.
  // A is still in flight and its buffers must stay held: the ring no longer says where they are.
  const { dma, vq, dev } = setup('packed', false, 4);
  const [a, b, c] = [dma.alloc(4096), dma.alloc(4096), dma.alloc(4096)];
  vq.add([{ addr: a.iova, len: 16 }], [{ addr: a.iova + 64n, len: 8 }], 1);
  vq.add([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 64n, len: 8 }], 2);
  const [ca, cb] = dev.takeAll();
  dev.complete(cb!, 8);
  t.same(vq.popUsed(), { token: 2, len: 8 });
  vq.add([{ addr: c.iova, len: 16 }], [{ addr: c.iova + 64n, len: 8 }], 3);
  const [cc] = dev.takeAll();
  t.equal(freeing(dma, a).code, 'E_DMA_IN_USE', 'A, its slots overwritten, still holds its buffer');
  t.equal(freeing(dma, c).code, 'E_DMA_IN_USE', 'C holds its buffer');
  t.equal(freeing(dma, b).code, 'no error', 'B is used: its buffer is freed');
  dev.complete(ca!, 8);
  dev.complete(cc!, 8);
  t.same(vq.popUsed(), { token: 1, len: 8 });
  t.equal(freeing(dma, a).code, 'no error', 'A used: freed');
  t.same(vq.popUsed(), { token: 3, len: 8 });
  t.equal(freeing(dma, c).code, 'no error', 'C used: freed');
});

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: a device scribbling over the ring and the tables makes free() answer, never throw otherwise or hang`, async (t) => {
    for (const fill of [0x00, 0xff, 0x41]) {
      const { dma, vq, ring } = setup(layout, true, 8);
      const bufs = [dma.alloc(4096), dma.alloc(4096)];
      vq.add([{ addr: bufs[0]!.iova, len: 16 }], [{ addr: bufs[0]!.iova + 16n, len: 1 }], 1); // indirect
      const direct = createVirtqueue<number>(layout, { index: 4, size: 8, dma, features: { indirect: false, eventIdx: false }, notify: () => {} });
      direct.add([{ addr: bufs[1]!.iova, len: 16 }], [{ addr: bufs[1]!.iova + 16n, len: 1 }, { addr: bufs[1]!.iova + 32n, len: 1 }], 2);
      // Everything the device can write: both rings and the indirect slab.
      for (const r of dma.handedOut) if (!bufs.includes(r)) r.bytes.fill(fill);
      for (const b of bufs) t.ok(['no error', 'E_DMA_IN_USE'].includes(freeing(dma, b).code), `fill 0x${fill.toString(16)}: an answer`);
      t.equal(freeing(dma, ring).code, 'E_DMA_IN_USE', 'the ring is still its own');
      vq.close();
      direct.close();
    }
  });
}

t.test('FreeGuards: checks are asked in turn, removed once, and the first user found is named', async (t) => {
  const g = new FreeGuards();
  const remove = g.add((iova) => (iova === 0x1000n ? 'chain 1 in flight on queue 0 uses 0x1000+4 of it' : undefined));
  g.assertUnused(0x2000n, 4096, 'the test allocator');
  t.equal(codeOf(() => g.assertUnused(0x1000n, 4096, 'the test allocator')), 'E_DMA_IN_USE');
  remove();
  remove();
  g.assertUnused(0x1000n, 4096, 'the test allocator');
});

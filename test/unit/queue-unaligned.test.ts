// Ring memory that is not 8-byte aligned in its ArrayBuffer: the queues then take their DataView
// path for descriptor stores and used loads instead of the 32/64-bit typed-array views (the
// DmaAllocator interface promises IOVA alignment, not buffer alignment). Both layouts must behave
// exactly as on aligned memory.
import t, { type Test } from 'tap';
import { HeapDmaAllocator, type DmaAllocator, type DmaRegion, type GuestMemory } from '../../lib/mem/dma.js';
import { createVirtqueue, type Layout, type Virtqueue } from '../../lib/virtio/queue/index.js';
import { PackedHandDevice, SplitHandDevice, seg, segs } from '../support/hand-device.js';

/** Heap memory whose regions start 4 bytes into their ArrayBuffer (IOVAs stay aligned). */
class MisalignedDma implements DmaAllocator, GuestMemory {
  private readonly inner = new HeapDmaAllocator();
  private readonly regions: DmaRegion[] = [];

  alloc(size: number, align?: number): DmaRegion {
    const iova = this.inner.alloc(size, align).iova;
    const region = { bytes: new Uint8Array(new ArrayBuffer(size + 4), 4, size), iova, size };
    this.regions.push(region);
    return region;
  }
  free(): void {}
  lookup(iova: bigint, len: number): DmaRegion | undefined {
    return this.regions.find((r) => iova >= r.iova && iova + BigInt(len) <= r.iova + BigInt(r.size));
  }
  view(iova: bigint, len: number): Uint8Array {
    const r = this.lookup(iova, len);
    if (!r) throw new Error(`no memory at 0x${iova.toString(16)}`);
    const off = Number(iova - r.iova);
    return r.bytes.subarray(off, off + len);
  }
  close(): void {}
}

function roundTrip(t: Test, layout: Layout, dma: MisalignedDma | HeapDmaAllocator): void {
  const vq: Virtqueue<number> = createVirtqueue<number>(layout, {
    index: 0, size: 8, dma, features: { indirect: false, eventIdx: false }, notify: () => {},
  });
  const dev = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
  let token = 0;
  for (let round = 0; round < 20; round++) { // several laps of the ring (wrap counters, free lists)
    vq.add([seg(0x1000, 16)], [seg(0x2000, 512)], token++);
    vq.add(segs(2, 0x3000), [seg(0x9000, 64)], token++);
    vq.kick();
    const chains = dev.takeAll();
    t.same(chains[0]!.segments, [{ addr: 0x1000n, len: 16, write: false }, { addr: 0x2000n, len: 512, write: true }]);
    t.same(chains[1]!.segments.map((s) => s.write), [false, false, true]);
    dev.complete(chains[0]!, 100);
    dev.complete(chains[1]!, 64);
    t.same([vq.popUsed(), vq.popUsed(), vq.popUsed()], [{ token: token - 2, len: 100 }, { token: token - 1, len: 64 }, null]);
  }
}

for (const layout of ['split', 'packed'] as const) {
  void t.test(`${layout}: chains go out and come back the same on memory not 8-byte aligned in its buffer`, async (t) => {
    roundTrip(t, layout, new MisalignedDma());
    roundTrip(t, layout, new HeapDmaAllocator());
  });

  void t.test(`${layout}: a used length over the writable bytes is refused on misaligned memory too`, async (t) => {
    const dma = new MisalignedDma();
    const vq = createVirtqueue<number>(layout, { index: 0, size: 8, dma, features: { indirect: false, eventIdx: false }, notify: () => {} });
    const dev = layout === 'split' ? new SplitHandDevice(dma, vq) : new PackedHandDevice(dma, vq);
    vq.add([seg(0x1000, 16)], [seg(0x2000, 8)], 1);
    dev.complete(dev.takeAll()[0]!, 9);
    t.throws(() => vq.popUsed(), { code: 'E_DEVICE_BAD_USED_LEN' });
  });
}

void t.test('split: used elements published in two steps are all taken, in order, each checked', async (t) => {
  const dma = new HeapDmaAllocator();
  const vq = createVirtqueue<number>('split', { index: 0, size: 8, dma, features: { indirect: false, eventIdx: false }, notify: () => {} });
  const dev = new SplitHandDevice(dma, vq);
  for (let i = 0; i < 4; i++) vq.add([seg(0x1000, 16)], [seg(0x2000, 8)], i);
  const chains = dev.takeAll();
  dev.complete(chains[0]!, 1);
  dev.complete(chains[1]!, 2);
  t.same(vq.popUsed(), { token: 0, len: 1 });
  dev.complete(chains[2]!, 3); // published while the driver is between two pops
  t.same([vq.popUsed(), vq.popUsed(), vq.popUsed()], [{ token: 1, len: 2 }, { token: 2, len: 3 }, null]);
  dev.complete(chains[3]!, 9); // over the 8 writable bytes
  t.throws(() => vq.popUsed(), { code: 'E_DEVICE_BAD_USED_LEN' });
});

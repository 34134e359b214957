// Every DmaAllocator of the SDK refuses free() of memory a live virtqueue uses (E_DMA_IN_USE,
// nothing freed, nothing unmapped): the VFIO allocator (over a back-end that records what it is
// asked to unmap), the vhost-user memfd arena and vhost-vdpa's arena — also once the allocator is
// closed, when freeing would unmap memory from this process under a ring the queue still reads.
// The queue-level matrix is test/unit/dma-free-in-use.test.ts.
import t from 'tap';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import { VfioDmaAllocator, type Backing, type DmaBackend } from '../../lib/vfio/dma.js';
import { MemfdArena } from '../../lib/transport/vhost-user/arena.js';
import { VdpaArena } from '../../lib/transport/vhost-vdpa/arena.js';
import { createVirtqueue } from '../../lib/virtio/queue/index.js';
import { codeOf } from '../support/codes.js';

/** VFIO type1 without a device: plain memory at made-up IOVAs; revoke and unmapHost are recorded. */
class FakeBackend implements DmaBackend {
  readonly kind = 'type1';
  readonly revoked: bigint[] = [];
  readonly unmapped: bigint[] = [];
  private next = 0x10_0000_0000n;
  alloc(size: number): Backing {
    const length = Math.ceil(size / 4096) * 4096;
    const buffer = new ArrayBuffer(length);
    const iova = this.next;
    this.next += BigInt(length) + 4096n;
    return { region: { bytes: new Uint8Array(buffer, 0, size), iova, size }, mapping: { address: iova, length, buffer, pointer: null }, length };
  }
  revoke(b: Backing): void {
    this.revoked.push(b.region.iova);
  }
  unmapHost(b: Backing): void {
    this.unmapped.push(b.region.iova);
  }
}

const allocators: [string, () => { dma: DmaAllocator; unmapped: () => bigint[] }][] = [
  ['VfioDmaAllocator', () => {
    const backend = new FakeBackend();
    return { dma: new VfioDmaAllocator(backend), unmapped: () => backend.unmapped };
  }],
  ['MemfdArena (vhost-user)', () => ({ dma: new MemfdArena(1 << 20), unmapped: () => [] })],
  ['VdpaArena (vhost-vdpa)', () => ({ dma: new VdpaArena(1 << 20), unmapped: () => [] })],
];

for (const [name, make] of allocators) {
  for (const layout of ['split', 'packed'] as const) {
    t.test(`${name}, ${layout}: a buffer in flight, the ring and an indirect table are refused E_DMA_IN_USE`, async (t) => {
      const { dma, unmapped } = make();
      const vq = createVirtqueue<number>(layout, { index: 2, size: 8, dma, features: { indirect: true, eventIdx: false }, notify: () => {}, checkSegments: true });
      const ring = dma.lookup(vq.addresses.desc, 1)!;
      const buf = dma.alloc(4096);
      const other = dma.alloc(4096);
      vq.add([{ addr: buf.iova + 100n, len: 16 }], [{ addr: buf.iova + 200n, len: 1 }], 1); // indirect (two segments)
      vq.add([{ addr: other.iova, len: 16 }], [], 2); // direct (one segment)
      const table = dma.lookup(findTable(vq.addresses.desc, dma, layout), 16)!;
      const held: DmaRegion[] = [buf, other, ring, table];
      for (const r of held) t.equal(codeOf(() => dma.free(r)), 'E_DMA_IN_USE', `refused: 0x${r.iova.toString(16)}`);
      t.throws(() => dma.free(buf), new RegExp(`refused by the ${name.startsWith('Vfio') ? 'VFIO DMA allocator' : name.startsWith('Vdpa') ? 'vhost-vdpa memfd arena' : 'vhost-user memfd arena'}`), 'the message names the allocator');
      for (const r of held) t.equal(dma.lookup(r.iova, r.size), r, 'nothing freed');
      t.same(unmapped(), [], 'nothing unmapped');
      dma.close();
      t.equal(codeOf(() => dma.free(ring)), 'E_DMA_IN_USE', 'closed, the ring of an open queue is still refused');
      t.equal(codeOf(() => dma.free(buf)), 'E_DMA_IN_USE', 'and a buffer in flight');
      t.same(unmapped(), [], 'still nothing unmapped');
      vq.close(); // the queue lets go: its ring and tables are freed, the buffers it forgot are free to go
      dma.free(buf);
      dma.free(other);
      t.equal(dma.lookup(ring.iova, 1), undefined, 'the ring went with close()');
    });
  }
}

/** The IOVA of the indirect table the first chain (ring slot / descriptor 0) points at. */
function findTable(desc: bigint, dma: DmaAllocator, layout: string): bigint {
  const ring = dma.lookup(desc, 16)!;
  const at = Number(desc - ring.iova);
  const view = new DataView(ring.bytes.buffer, ring.bytes.byteOffset + at, 16);
  const addr = view.getBigUint64(0, true);
  const flags = view.getUint16(layout === 'split' ? 12 : 14, true);
  if (!(flags & 4)) throw new Error(`descriptor 0 is not INDIRECT (flags 0x${flags.toString(16)})`);
  return addr;
}

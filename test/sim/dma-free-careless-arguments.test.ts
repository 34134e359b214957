// DmaAllocator.free() given what a careless driver author passes: null, undefined or a number (a
// region variable never assigned, an IOVA instead of the region), or a look-alike object with the
// right iova and another size. Today HeapDmaAllocator.free(null) (the allocator behind device.dma
// on the reference device, and the one the package exports) throws a bare TypeError "Cannot read
// properties of null (reading 'iova')" — README "Failure semantics": an argument of the wrong kind
// to a public call is refused E_INVALID_ARGUMENT, never a TypeError — and free() of a look-alike
// subtracts the look-alike's size, not the freed region's, from the bytes in use: the count goes
// negative and the allocator then hands out far more than its limit. What should happen:
// E_INVALID_ARGUMENT for a non-region, and the accounting by the region the allocator itself
// holds at that IOVA (or the look-alike refused/ignored), so the limit holds.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { codeOf } from '../support/codes.js';

t.test('device.dma.free(null / undefined / a number): E_INVALID_ARGUMENT, not a TypeError', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 2048 });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), {});
  t.teardown(() => dev.close());
  for (const bad of [null, undefined, 42, 0x1_0000_0000n]) {
    t.equal(codeOf(() => dev.dma.free(bad as never)), 'E_INVALID_ARGUMENT', `free(${String(bad)})`);
  }
});

t.test('HeapDmaAllocator: free() of a look-alike with a larger size does not lift the limit', async (t) => {
  const dma = new HeapDmaAllocator({ limit: 8192 });
  t.teardown(() => dma.close());
  const r = dma.alloc(4096);
  // Refused (E_INVALID_ARGUMENT) or ignored, as the header allows: either way the limit holds.
  const refused = codeOf(() => dma.free({ iova: r.iova, size: 1 << 20, bytes: r.bytes }));
  t.ok(refused === 'E_INVALID_ARGUMENT' || refused === 'no error', `the look-alike is refused or ignored (got ${refused})`);
  const code = codeOf(() => {
    const held = [];
    for (let i = 0; i < 8; i++) held.push(dma.alloc(4096)); // 32 KiB from an 8 KiB allocator
  });
  t.equal(code, 'E_DMA_EXHAUSTED', 'no more than the 8 KiB limit is handed out');
});

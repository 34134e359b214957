// HeapDmaAllocator's device-side lookups (lookup, view, contains, region, regionAt) agree with a plain
// BigInt scan over the regions, on the numeric fast path (last hit, binary search) and off it.

import t, { type Test } from 'tap';
import { HeapDmaAllocator, type DmaRegion } from '../../lib/mem/dma.js';
import { codeOf } from '../support/codes.js';

/** The reference answer: the region wholly containing [iova, iova+len), by BigInt arithmetic. */
function reference(regions: DmaRegion[], iova: bigint, len: number): DmaRegion | undefined {
  if (len < 0) return undefined;
  return regions.find((r) => iova >= r.iova && iova + BigInt(len) <= r.iova + BigInt(r.size));
}

function probes(regions: DmaRegion[]): [bigint, number][] {
  const out: [bigint, number][] = [[0n, 1], [-1n, 1], [2n ** 64n - 1n, 1]];
  for (const r of regions) {
    const end = r.iova + BigInt(r.size);
    out.push([r.iova, r.size], [r.iova, r.size + 1], [r.iova - 1n, 1], [r.iova - 1n, 2], [r.iova, 0], [end, 0], [end, 1],
      [end - 1n, 1], [end - 1n, 2], [r.iova + 7n, 9], [r.iova, -1], [r.iova + 4096n, 1], [end + 4095n, 1]);
  }
  return out;
}

function agree(t: Test, dma: HeapDmaAllocator, regions: DmaRegion[], what: string): void {
  let checked = 0;
  // Twice over, in a shuffled order the second time, so the last-hit cache is exercised both ways.
  const all = probes(regions);
  for (const order of [all, [...all].reverse()]) {
    for (const [iova, len] of order) {
      const want = reference(regions, iova, len);
      if (dma.lookup(iova, len) !== want) t.fail(`${what}: lookup(0x${iova.toString(16)}, ${len})`);
      if (dma.contains(iova, len) !== (want !== undefined)) t.fail(`${what}: contains(0x${iova.toString(16)}, ${len})`);
      const span = dma.region(iova, len);
      if (span !== undefined && span.bytes !== want?.bytes) t.fail(`${what}: region(0x${iova.toString(16)}, ${len})`);
      // regionAt: the same answer for the address as a number (the device's descriptors carry both).
      if (dma.regionAt(Number(iova), len) !== span) t.fail(`${what}: regionAt(0x${iova.toString(16)}, ${len}) differs from region()`);
      if (want) {
        const v = dma.view(iova, len);
        const off = Number(iova - want.iova);
        if (v.buffer !== want.bytes.buffer || v.byteOffset !== off || v.length !== len) t.fail(`${what}: view(0x${iova.toString(16)}, ${len})`);
        if (span && span.start + off !== Number(iova)) t.fail(`${what}: region start`);
      } else {
        t.throws(() => dma.view(iova, len), { code: 'E_DMA_RANGE' }, `${what}: view outside throws`);
      }
      checked++;
    }
  }
  t.ok(checked > 0, `${what}: ${checked} probes agree with a BigInt scan`);
}

t.test('lookups agree with a BigInt scan: fresh, after frees, after more allocations', async (t) => {
  const dma = new HeapDmaAllocator();
  const regions = [64, 4096, 1, 8192, 100, 65536, 3].map((size, i) => dma.alloc(size, i === 3 ? 65536 : 64));
  agree(t, dma, regions, 'fresh');
  for (const gone of [regions[2]!, regions[0]!, regions[6]!]) dma.free(gone);
  const live = regions.filter((_, i) => i !== 0 && i !== 2 && i !== 6);
  agree(t, dma, live, 'after frees');
  live.push(dma.alloc(500), dma.alloc(4096 * 3));
  agree(t, dma, live, 'after more allocations');
  dma.free(live[0]!);
  // A double free is the caller's mistake: refused, and nothing changes.
  t.equal(codeOf(() => dma.free(live[0]!)), 'E_INVALID_ARGUMENT', 'freeing twice is refused');
  agree(t, dma, live.slice(1), 'after freeing twice');
  const copy = { ...live[1]! };
  dma.free(copy); // an exact copy (same iova and size) names the same region
  t.equal(dma.lookup(live[1]!.iova, 1), undefined, 'an exact copy frees the region');
  live.splice(1, 1);
  dma.close();
  t.equal(dma.lookup(live[1]!.iova, 1), undefined, 'nothing after close');
});

t.test('addresses at or beyond 2^52 take the exact BigInt path', async (t) => {
  const dma = new HeapDmaAllocator({ base: 2n ** 60n - 2n ** 20n });
  const regions = [dma.alloc(4096), dma.alloc(64), dma.alloc(1 << 20)];
  t.ok(regions[2]!.iova > 2n ** 52n, 'regions above 2^52');
  agree(t, dma, regions, 'high base');
  t.equal(dma.region(regions[0]!.iova, 1), undefined, 'no numeric region above 2^52 (callers use view)');
  const near = new HeapDmaAllocator({ base: 2n ** 52n - 8192n });
  const straddle = [near.alloc(4096), near.alloc(64)];
  agree(t, near, straddle, 'straddling 2^52');
});

t.test('odd lengths: fractional or huge lengths are never contained', async (t) => {
  const dma = new HeapDmaAllocator();
  const r = dma.alloc(64);
  t.equal(dma.contains(r.iova, 1.5), false, 'fractional length');
  t.equal(dma.region(r.iova, 1.5), undefined, 'fractional length: no region');
  t.equal(dma.contains(r.iova, 2 ** 60), false, 'huge length');
  t.equal(dma.lookup(r.iova, Number.MAX_SAFE_INTEGER), undefined, 'huge length: no region');
  const at = Number(r.iova);
  t.equal(dma.regionAt(at, 64)?.bytes, r.bytes, 'regionAt: the region by its numeric address');
  for (const [bad, what] of [[at + 0.5, 'a fractional address'], [Number.NaN, 'NaN'], [Number.POSITIVE_INFINITY, 'Infinity'], [-at, 'a negative address']] as const) {
    t.equal(dma.regionAt(bad, 1), undefined, `regionAt: ${what}, no region`);
  }
  t.equal(dma.regionAt(at, 1.5), undefined, 'regionAt: fractional length, no region');
});

// BlkDriver.readDma: the device writes straight into the caller's DMA memory (no copy). What a user
// relies on: the bytes are the disk's, in the region at the offset asked, and the result is that
// very memory; memory the device cannot reach through this driver's allocator, a forged region, an
// offset or length that does not fit, or more than one request carries is refused before the device
// sees anything; more reads than slots wait their turn; a stop / snapshot / reinit with reads in
// flight still lands every byte.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { codeOfAsync } from '../support/codes.js';
import { openBlkSim, blkPattern } from '../support/blk-sim.js';


t.test('the bytes land in the region at the offset, and the result is that memory', async (t) => {
  const { blk } = await openBlkSim(t);
  const data = blkPattern(8192, 3);
  await blk.write(64, data);
  const region = blk.device.dma.alloc(3 * 4096);
  region.bytes.fill(0xaa);
  const got = await blk.readDma(64, 16, region, 4096);
  t.same(got, data, 'the disk\'s bytes');
  t.equal(got.buffer, region.bytes.buffer, 'the result is a view of the region, not a copy');
  t.equal(got.byteOffset, region.bytes.byteOffset + 4096);
  t.same(region.bytes.subarray(4096, 4096 + 8192), data, 'written at the offset');
  t.ok(region.bytes.subarray(0, 4096).every((b) => b === 0xaa) && region.bytes.subarray(4096 + 8192).every((b) => b === 0xaa), 'nothing outside it');
  blk.device.dma.free(region);
});

t.test('refused before the device sees anything', async (t) => {
  const { sim, blk } = await openBlkSim(t);
  const region = blk.device.dma.alloc(8192);
  const other = new HeapDmaAllocator().alloc(8192);
  const { blk: second } = await openBlkSim(t);
  const theirs = second.device.dma.alloc(8192);
  const forged = { iova: region.iova, bytes: new Uint8Array(8192), size: 8192 };
  const before = sim.stats.notifications[0]!;
  const cases: [string, Promise<unknown>][] = [
    ['another allocator\'s region', blk.readDma(0, 8, other)],
    ['another driver\'s region', blk.readDma(0, 8, theirs)],
    ['a forged region (our IOVA, other bytes)', blk.readDma(0, 8, forged)],
    ['an offset past the end', blk.readDma(0, 8, region, 8192)],
    ['a negative offset', blk.readDma(0, 8, region, -512)],
    ['a fractional offset', blk.readDma(0, 8, region, 0.5)],
    ['more than the region holds', blk.readDma(0, 24, region)],
    ['not a region', blk.readDma(0, 8, null as never)],
    ['NaN sectors', blk.readDma(0, Number.NaN, region)],
  ];
  for (const [what, p] of cases) t.equal(await codeOfAsync(p), 'E_INVALID_ARGUMENT', what);
  t.equal(await codeOfAsync(blk.readDma(4095, 8, region)), 'E_OUT_OF_RANGE', 'past the end of the disk, as read()');
  await blk.readDma(0, 8, region); // checked and accepted once …
  const moved = region as { iova: bigint };
  const iova = moved.iova;
  moved.iova = iova + 0x100000n; // … then its IOVA changed under the driver
  t.equal(await codeOfAsync(blk.readDma(0, 8, region)), 'E_INVALID_ARGUMENT', 'a checked region whose iova was changed afterwards');
  moved.iova = iova;
  const big = blk.device.dma.alloc(64 * 1024);
  t.equal(await codeOfAsync(blk.readDma(0, 64, big)), 'E_INVALID_ARGUMENT', 'more than maxTransfer (16 KiB) in one call');
  t.equal(sim.stats.notifications[0]! - before, 1, 'the device was notified for the one good read only');
});

t.test('more reads than slots wait their turn; each lands in its own place', async (t) => {
  const { blk } = await openBlkSim(t, { depth: 4, latencyMs: 1 });
  const data = blkPattern(32 * 4096, 9);
  await blk.write(0, data.subarray(0, 16384));
  await blk.write(32, data.subarray(16384, 32768));
  await blk.write(64, data.subarray(32768, 49152));
  await blk.write(96, data.subarray(49152, 65536));
  const region = blk.device.dma.alloc(16 * 4096);
  const reads = Array.from({ length: 16 }, (_, i) => blk.readDma(i * 8, 8, region, i * 4096));
  await Promise.all(reads);
  t.same(region.bytes, data.subarray(0, 16 * 4096));
});

t.test('stop → snapshot → reinit with reads in flight: every byte lands', async (t) => {
  const { blk } = await openBlkSim(t, { ringState: true, latencyMs: 3 });
  const data = blkPattern(8 * 4096, 5);
  for (let i = 0; i < 8; i++) await blk.write(i * 8, data.subarray(i * 4096, (i + 1) * 4096));
  const region = blk.device.dma.alloc(8 * 4096);
  const reads = Array.from({ length: 8 }, (_, i) => blk.readDma(i * 8, 8, region, i * 4096));
  await blk.stop();
  await blk.reinit(blk.snapshot());
  await Promise.all(reads);
  t.same(region.bytes, data);
});

t.test('a region whose fields change between reads: the device writes only where was checked', async (t) => {
  const { blk } = await openBlkSim(t);
  const data = blkPattern(4096, 11);
  await blk.write(0, data);
  const region = blk.device.dma.alloc(4096);
  const victim = blk.device.dma.alloc(4096);
  victim.bytes.fill(0x5a);
  // The k-th read of iova onwards answers another region of the same allocator.
  for (let k = 1; k <= 8; k++) {
    let reads = 0;
    const shifty = { get iova() { return ++reads < k ? region.iova : victim.iova; }, bytes: region.bytes, size: 4096 };
    region.bytes.fill(0);
    victim.bytes.fill(0x5a);
    const code = await codeOfAsync(async () => {
      const got = await blk.readDma(0, 8, shifty);
      t.same(got, data, `k=${k}: the result holds the disk's bytes`);
    });
    t.ok(code === 'no error' || code === 'E_INVALID_ARGUMENT', `k=${k}: accepted or refused (${code})`);
    t.ok(victim.bytes.every((b) => b === 0x5a), `k=${k}: nothing written into the other region`);
  }
});

t.test('bytes that are not a plain typed array view are refused with a typed error', async (t) => {
  const { blk } = await openBlkSim(t);
  const region = blk.device.dma.alloc(4096);
  const proxied = { iova: region.iova, bytes: new Proxy(region.bytes, {}), size: 4096 };
  t.equal(await codeOfAsync(blk.readDma(0, 8, proxied)), 'E_INVALID_ARGUMENT', 'a Proxy of the region\'s bytes');
  const asProxy = new Proxy(region, {});
  t.same(await codeOfAsync(blk.readDma(0, 8, asProxy)), 'no error', 'a Proxy of the region itself reads (its fields are the region\'s)');
  class Liar extends Uint8Array {
    override subarray(): Uint8Array<ArrayBuffer> { return new Uint8Array(4096); }
  }
  const liar = { iova: region.iova, bytes: new Liar(region.bytes.buffer as ArrayBuffer, region.bytes.byteOffset, 4096), size: 4096 };
  await blk.write(0, blkPattern(4096, 2));
  const got = await blk.readDma(0, 8, liar);
  t.equal(got.buffer, region.bytes.buffer, 'the result is the memory the device wrote, whatever subarray() says');
  t.same(got, blkPattern(4096, 2));
});

t.test('a region freed after it was used is refused, and the device stays healthy', async (t) => {
  const { blk } = await openBlkSim(t);
  const region = blk.device.dma.alloc(4096);
  await blk.readDma(0, 8, region); // checked and accepted once …
  blk.device.dma.free(region); // … then freed
  t.equal(await codeOfAsync(blk.readDma(0, 8, region)), 'E_INVALID_ARGUMENT', 'the freed region');
  t.equal(blk.device.failure, null, 'the device was never handed the freed memory');
  t.equal((await blk.read(0, 8)).length, 4096, 'other reads go on');
});

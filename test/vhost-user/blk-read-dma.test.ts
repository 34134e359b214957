// BlkDriver.readDma over vhost-user (a real qemu-storage-daemon): every region of the driver lives
// in one shared arena (one ArrayBuffer), so what keeps the device inside the caller's region is the
// IOVA check alone. What a user relies on: sub-views of a region read, a view of one region's bytes
// at another's IOVA is refused, and a region freed after use — whose memory the arena hands out
// again at the same IOVA — is refused rather than read into its new owner.
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { codeOfAsync } from '../support/codes.js';
import { daemonForTest } from './daemon.js';

t.test('readDma into the shared arena: sub-views read, forged and freed regions are refused', async (t) => {
  const d = await daemonForTest(t);
  const dev = await openTransport(d.address);
  const blk = await BlkDriver.open(dev.transport, { layout: 'split', depth: 8 });
  t.teardown(() => blk.close());
  const data = new Uint8Array(4096).map((_, i) => (i * 7 + 3) & 0xff);
  await blk.write(0, data);
  const big = blk.device.dma.alloc(16384);
  t.same(await blk.readDma(0, 8, big, 4096), data, 'at an offset');
  const sub = { iova: big.iova + 512n, bytes: big.bytes.subarray(512, 4608), size: 4096 };
  t.same(await blk.readDma(0, 8, sub), data, 'a sub-view of a region');
  const other = blk.device.dma.alloc(4096);
  const arena = new Uint8Array(big.bytes.buffer);
  const forged = { iova: other.iova, bytes: arena.subarray(big.bytes.byteOffset, big.bytes.byteOffset + 4096), size: 4096 };
  t.equal(await codeOfAsync(blk.readDma(0, 8, forged)), 'E_INVALID_ARGUMENT', 'one region\'s IOVA with another\'s bytes');
  const r = blk.device.dma.alloc(4096);
  await blk.readDma(0, 8, r);
  blk.device.dma.free(r);
  const next = blk.device.dma.alloc(4096);
  t.equal(next.iova, r.iova, 'the arena handed the memory out again');
  next.bytes.fill(0x11);
  t.equal(await codeOfAsync(blk.readDma(0, 8, r)), 'E_INVALID_ARGUMENT', 'the freed region');
  t.ok(next.bytes.every((b) => b === 0x11), 'its new owner\'s bytes are untouched');
});

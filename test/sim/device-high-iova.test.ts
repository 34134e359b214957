// The reference device reads each descriptor's address twice over: as the bigint the chain keeps
// (Segment.addr) and as a number (ChainSegment.at) for its fast path into memory
// (GuestMemory.regionAt). Addresses at or above 2^52 have no exact number: there `at` is -1 and
// every check and access goes by the bigint. Each case runs on memory placed wholly above 2^52 and
// on memory straddling it (regions below and above), split and packed, direct and indirect, and
// the device must serve exactly as it does low in memory — the data right, no rule broken — and
// still refuse a buffer the driver does not own (the guard page after a region).

import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { BLK_SECTOR_SIZE, BlkReq, BlkStatus, Feature, bit } from '../../lib/spec/index.js';
import { blkRequest, liveDevice, ruleIds, sendChain, smallBlk } from '../support/sim-driver.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const PLACES = [
  { name: 'above 2^52', base: 2n ** 60n },
  { name: 'straddling 2^52', base: 2n ** 52n - 3n * 4096n },
] as const;

for (const place of PLACES) {
  for (const layout of ['split', 'packed'] as const) {
    t.test(`${layout}, memory ${place.name}: BlkDriver data end to end, 1 to 29 sectors per request`, async (t) => {
      const dma = new HeapDmaAllocator({ base: place.base });
      t.teardown(() => dma.close());
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, dma });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, depth: 8 });
      t.teardown(() => blk.close());
      // Sizes from one sector to 32 (several data segments: indirect tables), scattered over memory.
      const writes = Array.from({ length: 24 }, (_, i) => ({ sector: i * 40, data: new Uint8Array(randomBytes(((i % 8) * 4 + 1) * BLK_SECTOR_SIZE)) }));
      await blk.writeMany(writes);
      await blk.flush();
      const back = await blk.readMany(writes.map((w) => ({ sector: w.sector, sectors: w.data.length / BLK_SECTOR_SIZE })));
      t.same(back.map(sha), writes.map((w) => sha(w.data)), 'every range reads back with its checksum');
      t.same(writes.map((w) => sha(sim.disk.subarray(w.sector * 512, w.sector * 512 + w.data.length))), writes.map((w) => sha(w.data)), 'the disk holds it');
      t.match(await blk.getId(), /\S/, 'GET_ID answers (the device scatters into a writable segment)');
      t.same(sim.violations, [], 'no driver rule broken');
      t.equal(sim.failure, undefined, 'the device never needed a reset');
    });

    t.test(`${layout}, memory ${place.name}: a buffer in the guard page after a region is refused (buffer-address-invalid)`, async (t) => {
      const dma = new HeapDmaAllocator({ base: place.base });
      t.teardown(() => dma.close());
      const { sim, d, ring } = liveDevice(smallBlk({ dma }), layout, bit(Feature.INDIRECT_DESC));
      t.teardown(() => sim.fn.close());
      for (const indirect of [false, true]) {
        const good = blkRequest(d, BlkReq.IN, 0n, 512);
        await sendChain(d, ring, good.segs, { indirect });
        t.equal(good.status.bytes[0], BlkStatus.OK, `a request in owned memory is served (${indirect ? 'indirect table' : 'direct'})`);
      }
      const region = d.alloc(512);
      // One byte past the region's end: the guard page the allocator leaves between regions; the
      // descriptor is in an indirect table, whose entries are read by the same two-way address path.
      const bad = blkRequest(d, BlkReq.IN, 0n, 512);
      bad.segs[1] = { addr: region.iova + 512n, len: 512, write: true };
      await sendChain(d, ring, bad.segs, { indirect: true });
      t.same(ruleIds(sim), ['buffer-address-invalid'], 'the device names the rule');
      t.equal(bad.status.bytes[0], 0xff, 'nothing written to the refused request');
    });
  }
}

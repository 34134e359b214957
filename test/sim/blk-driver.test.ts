// BlkDriver on the reference device, split and packed: data integrity over several queues, the
// batch API, DISCARD / WRITE_ZEROES and their limits, read-only refusals, blk_size / seg_max /
// size_max splitting as the device saw it, device errors as typed errors, polling and MSI-X.

import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createSimDevice, type SimBlkOptions } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver, type BlkOpenOptions } from '../../drivers/blk/index.js';
import { BLK_SECTOR_SIZE, BlkReq } from '../../lib/spec/index.js';
import { codeOfAsync } from '../support/codes.js';

const LAYOUTS = ['split', 'packed'] as const;

async function bringUp(t: { teardown(fn: () => unknown): void }, sim: Omit<SimBlkOptions, 'type'>, driver: BlkOpenOptions = {}) {
  const dev = createSimDevice({ type: 'blk', capacitySectors: 8192, ...sim });
  const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), driver);
  t.teardown(() => blk.close());
  return { sim: dev, blk };
}


const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

for (const layout of LAYOUTS) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}: 4 queues, checksummed data end to end, spread over every queue`, async (t) => {
      const { sim, blk } = await bringUp(t, { queues: 4 }, { layout, interrupts, depth: 8 });
      t.equal(blk.queueCount, 4);
      t.equal(blk.device.interruptMode, interrupts === 'auto' ? 'msix' : 'poll');
      const writes = Array.from({ length: 48 }, (_, i) => ({ sector: i * 64, data: new Uint8Array(randomBytes(16 * BLK_SECTOR_SIZE)) }));
      await blk.writeMany(writes);
      await blk.flush();
      const back = await blk.readMany(writes.map((w) => ({ sector: w.sector, sectors: 16 })));
      t.same(back.map(sha), writes.map((w) => sha(w.data)), 'every range reads back with its checksum, in order');
      t.same(writes.map((w) => sha(sim.disk.subarray(w.sector * 512, w.sector * 512 + w.data.length))), writes.map((w) => sha(w.data)), 'the disk holds it');
      t.ok(sim.stats.completed.every((n) => n >= 10), `every queue carried requests: ${sim.stats.completed.join(', ')}`);
      if (interrupts === 'auto') t.ok(sim.stats.interrupts.every((n) => n > 0), 'interrupts on every queue');
    });
  }

  t.test(`${layout}: a batch kicks each queue once; results come back in order`, async (t) => {
    const { sim, blk } = await bringUp(t, { queues: 2, completion: 'manual' }, { layout, depth: 8 });
    const pending = blk.writeMany(Array.from({ length: 8 }, (_, i) => ({ sector: i, data: new Uint8Array(512).fill(i + 1) })));
    for (let i = 0; i < 20 && sim.held < 8; i++) await new Promise((r) => setImmediate(r));
    t.equal(sim.held, 8, 'all eight fetched');
    t.same(sim.stats.notifications, [1, 1], 'eight requests, one notification per queue');
    sim.completeNow();
    await pending;
    const reads = blk.readMany([7, 0, 3].map((sector) => ({ sector, sectors: 1 })));
    for (let i = 0; i < 20 && sim.held < 3; i++) await new Promise((r) => setImmediate(r));
    sim.completeNow();
    t.same((await reads).map((r) => r[0]), [8, 1, 4], 'readMany answers in the order asked');
  });

  t.test(`${layout}: more requests than slots wait their turn (depth 2, one queue)`, async (t) => {
    const { sim, blk } = await bringUp(t, { completion: { latencyMs: 1 } }, { layout, depth: 2 });
    let most = 0;
    const timer = setInterval(() => { most = Math.max(most, sim.held); }, 0);
    await Promise.all(Array.from({ length: 30 }, (_, i) => blk.write(i, new Uint8Array(512).fill(i))));
    clearInterval(timer);
    t.ok(most <= 2, `never more than 2 in flight (saw ${most})`);
    t.equal(sim.stats.completed[0], 30);
  });

  t.test(`${layout}: DISCARD and WRITE_ZEROES zero their ranges, within the advertised limits`, async (t) => {
    const { sim, blk } = await bringUp(t, {
      discard: { maxSectors: 64, maxSegments: 2, alignment: 8 }, writeZeroes: { maxSectors: 32, maxSegments: 3 },
    }, { layout });
    t.same(blk.limits.discard, { maxSectors: 64, maxSegments: 2, alignment: 8 });
    const fill = new Uint8Array(1024 * BLK_SECTOR_SIZE).fill(0xa5);
    await blk.write(0, fill.subarray(0, 128 * 1024));
    await blk.write(256, fill.subarray(0, 128 * 1024));
    const before = sim.requests.length;
    await blk.discard([{ sector: 8, sectors: 200 }]);
    const discards = sim.requests.slice(before);
    t.same(discards.map((r) => r.type), [BlkReq.DISCARD, BlkReq.DISCARD], '200 sectors in 64-sector segments, two to a request');
    t.ok(discards.every((r) => r.status === 0));
    t.ok(sim.disk.subarray(8 * 512, 208 * 512).every((b) => b === 0), 'the discarded range reads zero');
    t.ok(sim.disk.subarray(0, 8 * 512).every((b) => b === 0xa5) && sim.disk.subarray(208 * 512, 256 * 512).every((b) => b === 0xa5), 'its neighbours are intact');
    await blk.writeZeroes([{ sector: 260, sectors: 100 }, { sector: 400, sectors: 5 }], { unmap: true });
    t.ok((await blk.read(260, 100)).every((b) => b === 0), 'write-zeroes reads back zeros');
    t.ok((await blk.read(256, 4)).every((b) => b === 0xa5), 'before it untouched');
    t.equal(sim.requests.filter((r) => r.type === BlkReq.WRITE_ZEROES).length, 2, '4 + 1 segments of ≤ 32 sectors, 3 to a request');
    t.equal(await codeOfAsync(blk.discard([{ sector: 3, sectors: 8 }])), 'E_INVALID_ARGUMENT', 'unaligned discard refused before the device');
    t.equal(await codeOfAsync(blk.discard([{ sector: 8184, sectors: 16 }])), 'E_OUT_OF_RANGE');
  });
}

t.test('a device without DISCARD / WRITE_ZEROES: E_UNSUPPORTED before the device', async (t) => {
  const { sim, blk } = await bringUp(t, {});
  t.equal(await codeOfAsync(blk.discard([{ sector: 0, sectors: 8 }])), 'E_UNSUPPORTED');
  t.equal(await codeOfAsync(blk.writeZeroes([{ sector: 0, sectors: 8 }])), 'E_UNSUPPORTED');
  t.equal(sim.requests.length, 0, 'nothing reached the device');
});

t.test('read-only: writes, discards and write-zeroes refused with E_READ_ONLY before the device; the device refuses too', async (t) => {
  const { sim, blk } = await bringUp(t, { readOnly: true, discard: {}, writeZeroes: {}, diskFrom: new Uint8Array(4096).fill(7) });
  t.ok(blk.readOnly);
  for (const op of [blk.write(0, new Uint8Array(512)), blk.writeMany([{ sector: 0, data: new Uint8Array(512) }]),
    blk.discard([{ sector: 0, sectors: 1 }]), blk.writeZeroes([{ sector: 0, sectors: 1 }])]) {
    t.equal(await codeOfAsync(op), 'E_READ_ONLY');
  }
  t.equal(sim.requests.length, 0, 'nothing reached the device');
  t.ok((await blk.read(0, 8)).every((b) => b === 7), 'reads work');
  // A driver that ignores RO (raw queue) meets the device's own refusal: §5.2.6.2 IOERR.
  const dma = blk.device.transport.dma;
  const req = dma.alloc(1024);
  const v = new DataView(req.bytes.buffer, req.bytes.byteOffset);
  v.setUint32(0, BlkReq.OUT, true);
  await blk.requests.submit([{ addr: req.iova, len: 16 }, { addr: req.iova + 512n, len: 512 }], [{ addr: req.iova + 64n, len: 1 }]);
  t.equal(req.bytes[64], 1, 'IOERR');
  t.ok(sim.disk.subarray(0, 512).every((b) => b === 7), 'the disk is unchanged');
});

t.test('blk_size 4096: transfers must be whole 4 KiB blocks; the driver refuses the rest', async (t) => {
  const { sim, blk } = await bringUp(t, { blkSize: 4096 });
  t.equal(blk.limits.blockSize, 4096);
  t.equal(await codeOfAsync(blk.read(1, 8)), 'E_INVALID_ARGUMENT', 'start not on a block');
  t.equal(await codeOfAsync(blk.write(8, new Uint8Array(512))), 'E_INVALID_ARGUMENT', 'length not a block');
  t.equal(sim.requests.length, 0);
  const data = new Uint8Array(randomBytes(8192));
  await blk.write(16, data);
  t.same(sha(await blk.read(16, 16)), sha(data));
});

t.test('seg_max 3 and size_max 2 KiB: a 64 KiB write becomes requests the device accepts', async (t) => {
  const { sim, blk } = await bringUp(t, { segMax: 3, sizeMax: 2048 }, { maxTransfer: 1 << 20 });
  t.equal(blk.maxTransfer, 6144, 'seg_max × size_max');
  const data = new Uint8Array(randomBytes(64 * 1024));
  await blk.write(100, data);
  const out = sim.requests.filter((r) => r.type === BlkReq.OUT);
  t.equal(out.length, Math.ceil(65536 / 6144), 'one request per 6 KiB');
  t.ok(out.every((r) => r.dataSegments <= 3 && r.largestSegment <= 2048 && r.status === 0), 'each within seg_max and size_max');
  t.same(out.map((r) => r.sector), out.map((_, i) => 100 + i * 12), 'consecutive pieces');
  t.same(sha(await blk.read(100, 128)), sha(data), 'reassembled on read');
  t.ok(sim.requests.filter((r) => r.type === BlkReq.IN).every((r) => r.dataSegments <= 3 && r.largestSegment <= 2048));
});

t.test('device IOERR and UNSUPP become E_IO_ERROR and E_UNSUPPORTED; a batch reports its first failure after all finish', async (t) => {
  const { sim, blk } = await bringUp(t, { failSectors: [100] });
  t.equal(await codeOfAsync(blk.read(96, 8)), 'E_IO_ERROR');
  t.equal(await codeOfAsync(blk.write(100, new Uint8Array(512))), 'E_IO_ERROR');
  const batch = blk.writeMany([0, 100, 200].map((sector) => ({ sector, data: new Uint8Array(512).fill(9) })));
  t.equal(await codeOfAsync(batch), 'E_IO_ERROR');
  t.ok(sim.disk[0] === 9 && sim.disk[200 * 512] === 9, 'the others in the batch were carried out');
  sim.failSectors.delete(100);
  t.equal(await codeOfAsync(blk.read(96, 8)), 'no error', 'fault cleared');
  sim.unsupportedTypes.add(BlkReq.FLUSH);
  t.equal(await codeOfAsync(blk.flush()), 'E_UNSUPPORTED');
  t.equal(await codeOfAsync(blk.read(8190, 4)), 'E_OUT_OF_RANGE', 'beyond capacity: refused before the device');
});

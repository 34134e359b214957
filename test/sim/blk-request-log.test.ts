// The reference blk device's request log (SimBlkDevice.requests): what a test reads to see the
// requests the device carried out. It keeps the most recent BLK_LOG_LENGTH, oldest first, with
// every field as the device saw it, and a read is a copy the device does not change afterwards.

import t from 'tap';
import { createSimDevice, BLK_LOG_LENGTH } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { BlkReq, BlkStatus } from '../../lib/spec/index.js';

t.test('each field of a request as the device saw it', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 1 << 20, queues: 2, failSectors: [7] });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), {});
  t.teardown(() => blk.close());
  await blk.write(300_000, new Uint8Array(4096).fill(1));
  await blk.read(7, 1).catch(() => undefined);
  await blk.flush();
  const log = sim.requests;
  t.equal(log.length, 3);
  t.match(log[0], { type: BlkReq.OUT, sector: 300_000, dataSegments: 1, largestSegment: 4096, status: BlkStatus.OK });
  t.match(log[1], { type: BlkReq.IN, sector: 7, status: BlkStatus.IOERR }, 'a failing sector answered IOERR');
  t.match(log[2], { type: BlkReq.FLUSH, sector: 0, dataSegments: 0, largestSegment: 0, status: BlkStatus.OK });
  t.ok(log.every((r) => r.queue >= 0 && r.queue < 2), 'the queue each came on');
  await blk.flush();
  t.equal(log.length, 3, 'a copy: a later request does not change what was read');
  t.equal(sim.requests.length, 4);
});

t.test(`past ${BLK_LOG_LENGTH} requests it keeps the most recent, oldest first`, async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 1 << 15 });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), {});
  t.teardown(() => blk.close());
  const total = BLK_LOG_LENGTH + 1000;
  for (let done = 0; done < total; done += 100) {
    await blk.readMany(Array.from({ length: Math.min(100, total - done) }, (_, i) => ({ sector: done + i, sectors: 1 })));
  }
  const log = sim.requests;
  t.equal(log.length, BLK_LOG_LENGTH);
  const sectors = log.map((r) => r.sector).sort((a, b) => a - b);
  t.same([sectors[0], sectors.at(-1)], [total - BLK_LOG_LENGTH, total - 1], 'the first 1000 fell out, the last is there');
  t.ok(log.every((r) => r.type === BlkReq.IN && r.status === BlkStatus.OK));
  t.ok(log.slice(0, 100).every((r) => r.sector < total - BLK_LOG_LENGTH + 100) && log.slice(-100).every((r) => r.sector >= total - 100),
    'oldest first: the first entries are of the earliest batch kept, the last of the last batch');
});

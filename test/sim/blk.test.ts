// virtio-blk RAM disk through hand-built split and packed rings.
import t from 'tap';
import { createSimDevice, type SimBlkOptions } from '../../lib/sim/index.js';
import { BLK_ID_BYTES, BlkConfig, BlkFeature, BlkReq, BlkStatus, Feature, bit } from '../../lib/spec/index.js';
import { PackedRing, SimDriver, SplitRing, blkRequest, settle, type TestRing } from '../support/sim-driver.js';

type Layout = 'split' | 'packed';

function bringUp(layout: Layout, indirect: boolean, options: Partial<SimBlkOptions> = {}, queue = 0) {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 64, ...options });
  const d = new SimDriver(sim);
  d.start((layout === 'packed' ? bit(Feature.RING_PACKED) : 0n) | (indirect ? bit(Feature.INDIRECT_DESC) : 0n)
    | (options.queues ? bit(BlkFeature.MQ) : 0n));
  const ring: TestRing = layout === 'packed' ? new PackedRing(d, 16) : new SplitRing(d, 16);
  d.setupQueue(queue, ring);
  d.driverOk();
  return { sim, d, ring };
}

async function submit(d: SimDriver, ring: TestRing, q: number, segs: Parameters<TestRing['add']>[0], indirect = false) {
  const id = ring.add(segs, { indirect });
  d.notify(q);
  await settle();
  return { id, used: ring.takeUsed() };
}

for (const layout of ['split', 'packed'] as const) {
  for (const indirect of [false, true]) {
    t.test(`${layout}${indirect ? ' + indirect' : ''}: write, read back, disk holds the data`, async (t) => {
      const { sim, d, ring } = bringUp(layout, indirect);
      const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7 + 3) & 0xff);
      const w = blkRequest(d, BlkReq.OUT, 5n, data);
      const wr = await submit(d, ring, 0, w.segs, indirect);
      t.same(wr.used, [{ id: wr.id, len: 1 }], 'one used element, status byte written');
      t.equal(w.status.bytes[0], BlkStatus.OK);
      t.same(sim.disk.subarray(5 * 512, 7 * 512), data, 'disk holds the data');

      const r = blkRequest(d, BlkReq.IN, 5n, 1024);
      const rd = await submit(d, ring, 0, r.segs, indirect);
      t.same(rd.used, [{ id: rd.id, len: 1025 }], 'data and status written');
      t.equal(r.status.bytes[0], BlkStatus.OK);
      t.same(r.data!.bytes, data, 'read back');
      t.equal(sim.stats.completed[0], 2);
      t.equal(sim.stats.notifications[0], 2);
      t.same(d.vectors, [0, 0], 'one interrupt per completion on vector 0');
      t.equal(sim.failure, undefined);
    });
  }
}

t.test('a request split across odd segments is framed by bytes, not descriptors', async (t) => {
  const { sim, d, ring } = bringUp('split', false);
  const header = d.alloc(16);
  new DataView(header.bytes.buffer).setUint32(0, BlkReq.OUT, true);
  new DataView(header.bytes.buffer).setBigUint64(8, 1n, true);
  const payload = d.alloc(512 + 6);
  payload.bytes.fill(0xab, 6);
  payload.bytes.set(header.bytes.subarray(10, 16), 0); // the header's last 6 bytes share a segment with data
  const status = d.alloc(1);
  await submit(d, ring, 0, [{ addr: header.iova, len: 10 }, { addr: payload.iova, len: payload.size }, { addr: status.iova, len: 1, write: true }]);
  t.equal(status.bytes[0], BlkStatus.OK);
  t.ok(sim.disk.subarray(512, 1024).every((b) => b === 0xab));
});

t.test('GET_ID returns the 20-byte NUL-padded serial', async (t) => {
  const { d, ring } = bringUp('split', false, { serial: 'disk-42' });
  const r = blkRequest(d, BlkReq.GET_ID, 0n, BLK_ID_BYTES);
  const { used } = await submit(d, ring, 0, r.segs);
  t.equal(used[0]!.len, BLK_ID_BYTES + 1);
  t.equal(r.status.bytes[0], BlkStatus.OK);
  t.equal(new TextDecoder().decode(r.data!.bytes.subarray(0, 7)), 'disk-42');
  t.ok(r.data!.bytes.subarray(7).every((b) => b === 0));
  const short = blkRequest(d, BlkReq.GET_ID, 0n, 8);
  await submit(d, ring, 0, short.segs);
  t.equal(short.status.bytes[0], BlkStatus.IOERR, 'data must be exactly 20 bytes');
});

t.test('FLUSH succeeds; unknown types answer UNSUPP', async (t) => {
  const { d, ring } = bringUp('packed', false);
  const f = blkRequest(d, BlkReq.FLUSH, 0n);
  const { used } = await submit(d, ring, 0, f.segs);
  t.same(used.map((u) => u.len), [1]);
  t.equal(f.status.bytes[0], BlkStatus.OK);
  const dis = blkRequest(d, BlkReq.DISCARD, 0n, new Uint8Array(16));
  await submit(d, ring, 0, dis.segs);
  t.equal(dis.status.bytes[0], BlkStatus.UNSUPP);
});

t.test('out-of-range or partial-sector transfers answer IOERR and leave the disk alone', async (t) => {
  const { sim, d, ring } = bringUp('split', false);
  const w = blkRequest(d, BlkReq.OUT, 63n, new Uint8Array(1024).fill(1));
  await submit(d, ring, 0, w.segs);
  t.equal(w.status.bytes[0], BlkStatus.IOERR, 'runs past sector 64');
  t.ok(sim.disk.every((b) => b === 0));
  const r = blkRequest(d, BlkReq.IN, 64n, 512);
  r.data!.bytes.fill(0xee);
  const { used } = await submit(d, ring, 0, r.segs);
  t.equal(r.status.bytes[0], BlkStatus.IOERR);
  t.equal(used[0]!.len, 513, 'len covers what was written: zeros and status');
  t.ok(r.data!.bytes.every((b) => b === 0));
  const odd = blkRequest(d, BlkReq.OUT, 0n, new Uint8Array(100));
  await submit(d, ring, 0, odd.segs);
  t.equal(odd.status.bytes[0], BlkStatus.IOERR, 'not a whole sector');
  const huge = blkRequest(d, BlkReq.IN, 1n << 60n, 512);
  await submit(d, ring, 0, huge.segs);
  t.equal(huge.status.bytes[0], BlkStatus.IOERR, 'sector far beyond the disk');
});

t.test('config: capacity, blk_size, seg_max, size_max, num_queues with MQ', async (t) => {
  const { sim, d, ring } = bringUp('split', false, { queues: 4, queueMaxSize: 128 }, 3);
  const offered = d.deviceFeatures();
  for (const f of [BlkFeature.SIZE_MAX, BlkFeature.SEG_MAX, BlkFeature.BLK_SIZE, BlkFeature.FLUSH, BlkFeature.MQ]) {
    t.ok(offered & bit(f), `offers ${f}`);
  }
  t.equal(d.config32(BlkConfig.CAPACITY), 64);
  t.equal(d.config32(BlkConfig.BLK_SIZE), 512);
  t.equal(d.config32(BlkConfig.SEG_MAX), 126);
  t.equal(d.config32(BlkConfig.SIZE_MAX), 1 << 20);
  t.equal(d.config16(BlkConfig.NUM_QUEUES), 4);
  const w = blkRequest(d, BlkReq.OUT, 0n, new Uint8Array(512).fill(9));
  await submit(d, ring, 3, w.segs);
  t.equal(w.status.bytes[0], BlkStatus.OK, 'queue 3 serves requests');
  t.same(sim.stats.completed, [0, 0, 0, 1]);
  t.same(d.vectors, [3]);
});

t.test('packed ring wraps: used descriptors follow the device wrap counter', async (t) => {
  const { sim, d, ring } = bringUp('packed', false);
  for (let i = 0; i < 20; i++) {
    const w = blkRequest(d, BlkReq.OUT, BigInt(i), new Uint8Array(512).fill(i + 1));
    const { id, used } = await submit(d, ring, 0, w.segs);
    t.same(used, [{ id, len: 1 }], `request ${i}`);
  }
  t.equal(sim.disk[19 * 512], 20);
});

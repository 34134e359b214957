// Every driver rule of the strict reference device checked in the rings and the device types
// (lib/sim/virtio/rules.ts: split and packed rings, blk, net, rng), each broken once by the hand driver:
// the device records exactly that rule — id, spec section, action — and for 'needs-reset' rules
// sets DEVICE_NEEDS_RESET with a `failure` naming it; for 'ignore' rules it does not, and the case
// checks what the device made of the request.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import {
  BLK_DISCARD_FLAG_UNMAP, BLK_SECTOR_SIZE, BlkFeature, BlkReq, BlkStatus, CommonCfg, DescFlag, Feature, NET_HDR_LEN, NetFeature, NetHdr,
  PackedDesc, PackedFlag, bit,
} from '../../lib/spec/index.js';
import {
  PackedRing, SimDriver, SplitRing, blkRequest, blkStatus, buf64, liveDevice, liveNet, runRuleCases, sendChain, settle, smallBlk,
  type RuleCase,
} from '../support/sim-driver.js';

const INDIRECT = bit(Feature.INDIRECT_DESC);

const cases: RuleCase[] = [
  // ---- rings (§2.7, §2.8, §3.3.1, §6.1) ----
  {
    rule: 'ring-misaligned', name: 'a descriptor table 8 bytes off its 16-byte alignment',
    run: (t) => {
      const d = new SimDriver(smallBlk());
      d.start();
      const ring = new SplitRing(d, 8);
      d.selectQueue(0);
      d.w16(CommonCfg.QUEUE_SIZE, 8);
      d.write64(CommonCfg.QUEUE_DESC, ring.desc.iova + 8n);
      d.write64(CommonCfg.QUEUE_DRIVER, ring.driverArea.iova);
      d.write64(CommonCfg.QUEUE_DEVICE, ring.deviceArea.iova);
      d.w16(CommonCfg.QUEUE_ENABLE, 1);
      t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 0, 'not enabled');
      return d.sim;
    },
  },
  {
    rule: 'ring-address-invalid', name: 'a descriptor table outside the driver\'s memory',
    run: (t) => {
      const d = new SimDriver(smallBlk());
      d.start();
      d.selectQueue(0);
      d.write64(CommonCfg.QUEUE_DESC, 0x10n);
      d.w16(CommonCfg.QUEUE_ENABLE, 1);
      t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 0, 'not enabled');
      return d.sim;
    },
  },
  {
    rule: 'buffer-address-invalid', name: 'a header outside the driver\'s memory',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk());
      await sendChain(d, ring, [{ addr: 0xdead_0000n, len: 16 }, buf64(d, true)]);
      t.equal((ring as SplitRing).usedIdx, 0, 'nothing used');
      return sim;
    },
  },
  {
    rule: 'avail-idx-decreased', name: 'avail->idx moved back by one',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk({ completion: 'manual' }));
      const split = ring as SplitRing;
      split.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
      await sendChain(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs);
      t.equal(sim.held, 2);
      split.avail.setUint16(2, 1, true);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'avail-idx-too-far', name: 'avail->idx 20 ahead on a ring of 8',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      (ring as SplitRing).avail.setUint16(2, 20, true);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'avail-head-out-of-range', name: 'the available ring names descriptor 9 of 8',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      (ring as SplitRing).publish(9);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'desc-next-out-of-range', name: 'next = 8 in a table of 8',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, buf64(d), DescFlag.NEXT, 8);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'chain-loop', name: 'two descriptors linked to each other',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, buf64(d), DescFlag.NEXT, 1);
      split.writeDesc(split.descs, 1, buf64(d), DescFlag.NEXT, 0);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'chain-longer-than-queue', name: 'an indirect table of 10 descriptors on a ring of 8',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'split', INDIRECT);
      sim.disk.fill(0x5a, 0, 8 * BLK_SECTOR_SIZE);
      const header = blkRequest(d, BlkReq.IN, 0n);
      const data = Array.from({ length: 8 }, () => d.alloc(BLK_SECTOR_SIZE));
      await sendChain(d, ring, [header.segs[0]!, ...data.map((r) => ({ addr: r.iova, len: r.size, write: true })), header.segs[1]!], { indirect: true });
      t.equal(header.status.bytes[0], BlkStatus.OK, 'served anyway');
      t.ok(data.every((r) => r.bytes.every((b) => b === 0x5a)), 'with the data');
      return sim;
    },
  },
  {
    rule: 'chain-too-large', name: 'an indirect table naming 257 × 16 MiB, beyond 2^32 bytes',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'split', INDIRECT);
      const big = d.alloc(1 << 24);
      const r = blkRequest(d, BlkReq.OUT, 0n);
      const middle = Array.from({ length: 257 }, () => ({ addr: big.iova, len: big.size }));
      await sendChain(d, ring, [r.segs[0]!, ...middle, r.segs[1]!], { indirect: true });
      return sim;
    },
  },
  {
    rule: 'readable-after-writable', name: 'a readable descriptor after a writable one',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      await sendChain(d, ring, [buf64(d, true), buf64(d)]);
      return sim;
    },
  },
  {
    rule: 'zero-length-descriptor', name: 'a descriptor of length 0',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      await sendChain(d, ring, [{ addr: d.alloc(8).iova, len: 0 }]);
      return sim;
    },
  },
  {
    rule: 'indirect-not-negotiated', name: 'INDIRECT without VIRTIO_F_INDIRECT_DESC',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      await sendChain(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs, { indirect: true });
      return sim;
    },
  },
  {
    rule: 'indirect-nested', name: 'an indirect table inside an indirect table',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'split', INDIRECT);
      const split = ring as SplitRing;
      const table = d.alloc(16);
      split.writeDesc(new DataView(table.bytes.buffer, table.bytes.byteOffset), 0, buf64(d), DescFlag.INDIRECT, 0);
      split.writeDesc(split.descs, 0, { addr: table.iova, len: 16 }, DescFlag.INDIRECT, 0);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'indirect-with-next', name: 'INDIRECT together with NEXT',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'split', INDIRECT);
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, buf64(d), DescFlag.INDIRECT | DescFlag.NEXT, 1);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'indirect-table-invalid', name: 'an indirect table of 24 bytes',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'split', INDIRECT);
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, { addr: d.alloc(24).iova, len: 24 }, DescFlag.INDIRECT, 0);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'indirect-entry-flags', name: 'packed: NEXT on an indirect table entry',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'packed', INDIRECT);
      const packed = ring as PackedRing;
      const r = blkRequest(d, BlkReq.FLUSH, 0n);
      packed.add(r.segs, { indirect: true });
      const table = packed.descs.getBigUint64(PackedDesc.ADDR, true);
      const entry = d.sim.dma.view(table, PackedDesc.SIZE);
      new DataView(entry.buffer, entry.byteOffset).setUint16(PackedDesc.FLAGS, PackedFlag.NEXT, true);
      d.notify(0);
      await settle();
      t.equal(r.status.bytes[0], BlkStatus.OK, 'the flag is ignored, the request served');
      return sim;
    },
  },
  {
    rule: 'buffer-in-use', name: 'split: a head made available again while the device holds it',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk({ completion: 'manual' }));
      await sendChain(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs);
      (ring as SplitRing).publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'list-partially-available', name: 'packed: a list whose second descriptor is not available',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'packed');
      const packed = ring as PackedRing;
      packed.descs.setBigUint64(PackedDesc.ADDR, d.alloc(16).iova, true);
      packed.descs.setUint32(PackedDesc.LEN, 16, true);
      packed.descs.setUint16(PackedDesc.FLAGS, PackedFlag.NEXT | PackedFlag.AVAIL, true);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'ring-overrun', name: 'packed: a fifth buffer on a ring of 4 the device holds whole',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk({ completion: 'manual' }), 'packed', INDIRECT, 4);
      for (let i = 0; i < 4; i++) ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs, { indirect: true });
      d.notify(0);
      await settle();
      t.equal(sim.held, 4, 'four held, the ring full');
      await sendChain(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs, { indirect: true });
      return sim;
    },
  },
  {
    rule: 'avail-flags-invalid', name: 'split: avail->flags 1 with EVENT_IDX',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'split', bit(Feature.EVENT_IDX));
      (ring as SplitRing).availFlags = 1;
      t.equal(await blkStatus(d, ring, BlkReq.FLUSH, 0n), BlkStatus.OK, 'served');
      return sim;
    },
  },
  {
    rule: 'driver-event-invalid', name: 'packed: the reserved event flags value 3',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk(), 'packed');
      (ring as PackedRing).setDriverEvent(3);
      t.equal(await blkStatus(d, ring, BlkReq.FLUSH, 0n), BlkStatus.OK, 'served');
      return sim;
    },
  },
  // ---- device types (§5.1, §5.2, §5.4) ----
  {
    rule: 'blk-request-malformed', name: 'a blk request without a status byte',
    run: async () => {
      const { sim, d, ring } = liveDevice(smallBlk());
      await sendChain(d, ring, [buf64(d)]);
      return sim;
    },
  },
  {
    rule: 'blk-beyond-capacity', name: 'a read at sector 100 of 64',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk());
      t.equal(await blkStatus(d, ring, BlkReq.IN, 100n, BLK_SECTOR_SIZE), BlkStatus.IOERR, 'answered IOERR');
      return sim;
    },
  },
  {
    rule: 'blk-flush-sector', name: 'a FLUSH with sector 5',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk());
      t.equal(await blkStatus(d, ring, BlkReq.FLUSH, 5n), BlkStatus.OK, 'served');
      return sim;
    },
  },
  {
    rule: 'blk-data-length', name: 'a read of 100 bytes',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk());
      t.equal(await blkStatus(d, ring, BlkReq.IN, 0n, 100), BlkStatus.IOERR, 'answered IOERR');
      return sim;
    },
  },
  {
    rule: 'blk-too-many-ranges', name: 'a DISCARD of two ranges, max_discard_seg 1',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk({ discard: { maxSegments: 1 } }), 'split', bit(BlkFeature.DISCARD));
      const ranges = new Uint8Array(32);
      new DataView(ranges.buffer).setUint32(8, 1, true);
      new DataView(ranges.buffer).setUint32(24, 1, true);
      t.equal(await blkStatus(d, ring, BlkReq.DISCARD, 0n, ranges), BlkStatus.IOERR, 'answered IOERR');
      return sim;
    },
  },
  {
    rule: 'blk-discard-unmap', name: 'a DISCARD with the unmap bit',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk({ discard: {} }), 'split', bit(BlkFeature.DISCARD));
      const range = new Uint8Array(16);
      new DataView(range.buffer).setUint32(8, 1, true);
      new DataView(range.buffer).setUint32(12, BLK_DISCARD_FLAG_UNMAP, true);
      t.equal(await blkStatus(d, ring, BlkReq.DISCARD, 0n, range), BlkStatus.UNSUPP, 'answered UNSUPP');
      return sim;
    },
  },
  {
    rule: 'net-tx-malformed', name: 'a transmit chain of 8 bytes',
    run: async () => {
      const { sim, d, tx } = liveNet();
      d.driverOk();
      tx.add([{ addr: d.alloc(8).iova, len: 8 }]);
      d.notify(1);
      await settle();
      return sim;
    },
  },
  {
    rule: 'net-tx-header', name: 'a transmit header with num_buffers 1',
    run: async (t) => {
      const { sim, d, rx, tx } = liveNet();
      d.driverOk();
      const rxBuf = d.alloc(NET_HDR_LEN + 64);
      rx.add([{ addr: rxBuf.iova, len: rxBuf.size, write: true }]);
      const frame = d.alloc(NET_HDR_LEN + 60);
      new DataView(frame.bytes.buffer, frame.bytes.byteOffset).setUint16(NetHdr.NUM_BUFFERS, 1, true);
      tx.add([{ addr: frame.iova, len: frame.size }]);
      d.notify(1);
      await settle(5);
      t.same(rx.takeUsed().map((u) => u.len), [NET_HDR_LEN + 60], 'the frame went out anyway');
      return sim;
    },
  },
  {
    rule: 'net-rx-buffer-small', name: 'MRG_RXBUF receive buffers of 8 bytes',
    run: async (t) => {
      const { sim, d, rx, tx } = liveNet({ mergeable: true }, bit(NetFeature.MRG_RXBUF));
      d.driverOk();
      for (let i = 0; i < 6; i++) rx.add([{ addr: d.alloc(8).iova, len: 8, write: true }]);
      tx.add([{ addr: d.alloc(NET_HDR_LEN + 20).iova, len: NET_HDR_LEN + 20 }]);
      d.notify(1);
      await settle(5);
      t.equal(rx.takeUsed().length, 4, 'the frame spread over four of them anyway');
      return sim;
    },
  },
  {
    rule: 'net-ctrl-malformed', name: 'a control command of one byte',
    run: async () => {
      const { sim, d } = liveNet({ queuePairs: 1 }, bit(NetFeature.CTRL_VQ));
      const ctrl = new SplitRing(d, 8);
      d.setupQueue(2, ctrl);
      d.driverOk();
      ctrl.add([{ addr: d.alloc(1).iova, len: 1 }, { addr: d.alloc(1).iova, len: 1, write: true }]);
      d.notify(2);
      await settle();
      return sim;
    },
  },
  {
    rule: 'rng-request-malformed', name: 'an rng request with a device-readable buffer',
    run: async () => {
      const { sim, d, ring } = liveDevice(createSimDevice({ type: 'rng' }));
      await sendChain(d, ring, [buf64(d), buf64(d, true)]);
      return sim;
    },
  },
  {
    rule: 'console-tx-malformed', name: 'a console transmit chain with a device-writable buffer',
    run: async () => {
      const sim = createSimDevice({ type: 'console', multiport: false });
      const d = new SimDriver(sim);
      d.start(0n);
      d.setConfigVector(0);
      const tx = new SplitRing(d, 8);
      d.setupQueue(1, tx);
      d.driverOk();
      tx.add([buf64(d), buf64(d, true)]);
      d.notify(1);
      await settle();
      return sim;
    },
  },
];

runRuleCases(t, cases, ['rings', 'device-types']);

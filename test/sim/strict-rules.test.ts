// Every driver rule the strict reference device enforces (lib/sim/rules.ts), each broken once by
// the hand driver at register or ring level: the device records exactly that rule — its id, the
// spec section and the action — and for 'needs-reset' rules sets DEVICE_NEEDS_RESET with a
// `failure` naming the rule; for 'ignore' rules it does not, and the case checks what became of
// the access. The last test checks that no rule of the catalogue is without a case here.

import t, { type Test } from 'tap';
import { CapAt } from '../../lib/sim/pci-config.js';
import { RULES, createSimDevice, type RuleId, type SimBlkDevice, type SimBlkOptions, type SimDevice } from '../../lib/sim/index.js';
import { PciCommand, PciConfig } from '../../lib/pci/config.js';
import {
  BLK_DISCARD_FLAG_UNMAP, BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkReq, BlkStatus, CommonCfg, DescFlag, DeviceStateCmd,
  DeviceStateRefusal, Feature, NET_HDR_LEN, NetFeature, NetHdr, PackedDesc, PackedFlag, PciCapField, Status,
  VIRTIO_MSI_NO_VECTOR, bit,
} from '../../lib/virtio/constants.js';
import {
  PackedRing, SimDriver, SplitRing, blkRequest, liveDevice, ruleIds, settle, type Seg,
} from '../support/sim-driver.js';

const V1 = bit(Feature.VERSION_1);
const RING_STATE = bit(Feature.RING_STATE);
const INDIRECT = bit(Feature.INDIRECT_DESC);
const blk = (o: Omit<SimBlkOptions, 'type'> = {}): SimBlkDevice => createSimDevice({ type: 'blk', capacitySectors: 64, ...o });
const ringStateBlk = (): SimBlkDevice => blk({ state: { ringState: true } });

/** Sends `segs` on queue 0 and lets the device run. */
async function send(d: SimDriver, ring: SplitRing | PackedRing, segs: Seg[], options?: { indirect?: boolean }): Promise<void> {
  ring.add(segs, options);
  d.notify(0);
  await settle();
}

/** A blk request of `type` on the live device's queue 0; resolves with its status byte. */
async function request(d: SimDriver, ring: SplitRing | PackedRing, type: number, sector: bigint, data?: Uint8Array | number): Promise<number> {
  const r = blkRequest(d, type, sector, data);
  await send(d, ring, r.segs);
  return r.status.bytes[0]!;
}

/** A 64-byte buffer, device-readable unless `write`. */
const buf = (d: SimDriver, write = false): Seg => ({ addr: d.alloc(64).iova, len: 64, write });

/** A net device with its rx (0) and tx (1) queues live; `extra` features, `size` entries. */
function liveNet(options: { mergeable?: boolean; queuePairs?: number } = {}, extra = 0n) {
  const sim = createSimDevice({ type: 'net', ...options });
  const d = new SimDriver(sim);
  d.start(extra);
  d.setConfigVector(0);
  const rx = new SplitRing(d, 8);
  const tx = new SplitRing(d, 8);
  d.setupQueue(0, rx);
  d.setupQueue(1, tx);
  return { sim, d, rx, tx };
}

interface Case {
  rule: RuleId;
  /** What the driver does wrong. */
  name: string;
  /** Breaks the rule (checking what became of the access on the way); returns the device. */
  run: (t: Test) => Promise<SimDevice> | SimDevice;
  /** Other rules the same mistake necessarily breaks. */
  also?: RuleId[];
}

const cases: Case[] = [
  // ---- device status (virtio 1.2 §2.1, §3.1.1, §4.1.4.3.2, the proposal, 1.4 §3.4) ----
  {
    rule: 'status-bit-cleared', name: 'a status write without FEATURES_OK after it was set',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      d.w8(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE);
      t.equal(d.status & Status.FEATURES_OK, Status.FEATURES_OK, 'the bit stays set');
      return d.sim;
    },
  },
  {
    rule: 'stop-cleared', name: 'a status write without STOP once it shows',
    run: async (t) => {
      const { sim, d } = liveDevice(ringStateBlk(), 'split', RING_STATE);
      d.addStatus(Status.STOP);
      await d.waitStatus((s) => (s & Status.STOP) !== 0);
      d.w8(CommonCfg.DEVICE_STATUS, d.status & ~Status.STOP);
      t.ok(d.status & Status.STOP, 'STOP still shows');
      return sim;
    },
  },
  {
    rule: 'init-after-failed', name: 'DRIVER set after FAILED, without a reset',
    run: (t) => {
      const d = new SimDriver(blk());
      d.addStatus(Status.ACKNOWLEDGE);
      d.addStatus(Status.FAILED);
      d.addStatus(Status.DRIVER);
      t.notOk(d.status & Status.DRIVER, 'DRIVER did not stick');
      return d.sim;
    },
  },
  {
    rule: 'status-out-of-order', name: 'DRIVER before ACKNOWLEDGE',
    run: (t) => {
      const d = new SimDriver(blk());
      d.addStatus(Status.DRIVER);
      t.equal(d.status, 0, 'DRIVER did not stick');
      return d.sim;
    },
  },
  {
    rule: 'reinit-before-reset-read', name: 'ACKNOWLEDGE right after the reset write, device_status never read',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      d.w8(CommonCfg.DEVICE_STATUS, 0);
      d.w8(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE);
      t.equal(d.status, Status.ACKNOWLEDGE, 'the write was taken (the reset had completed)');
      return d.sim;
    },
  },
  {
    rule: 'features-written-early', name: 'driver_feature written before DRIVER',
    run: (t) => {
      const d = new SimDriver(blk());
      d.addStatus(Status.ACKNOWLEDGE);
      d.writeDriverFeatures(V1);
      d.addStatus(Status.DRIVER);
      d.addStatus(Status.FEATURES_OK);
      t.ok(d.status & Status.FEATURES_OK, 'the features were taken');
      return d.sim;
    },
  },
  {
    rule: 'features-written-late', name: 'driver_feature written after FEATURES_OK',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      d.writeDriverFeatures(V1 | bit(Feature.EVENT_IDX));
      d.w32(CommonCfg.DRIVER_FEATURE_SELECT, 0);
      t.equal(d.r32(CommonCfg.DRIVER_FEATURE), 0, 'the features stay as they were at FEATURES_OK');
      return d.sim;
    },
  },
  {
    rule: 'feature-not-offered', name: 'a feature bit nobody offers',
    run: (t) => {
      const d = new SimDriver(blk());
      t.notOk(d.negotiate(V1 | bit(50)), 'FEATURES_OK does not stick');
      return d.sim;
    },
  },
  {
    rule: 'feature-dependency', name: 'net MQ without CTRL_VQ (§5.1.3.1)',
    run: (t) => {
      const d = new SimDriver(createSimDevice({ type: 'net', queuePairs: 2 }));
      t.notOk(d.negotiate(V1 | bit(NetFeature.MQ)), 'FEATURES_OK does not stick');
      return d.sim;
    },
  },
  {
    rule: 'version-1-not-accepted', name: 'features without VERSION_1',
    run: (t) => {
      const d = new SimDriver(blk());
      t.notOk(d.negotiate(bit(BlkFeature.FLUSH)), 'FEATURES_OK does not stick');
      return d.sim;
    },
  },
  {
    rule: 'stop-not-allowed', name: 'STOP on a device without RING_STATE',
    run: async (t) => {
      const { sim, d } = liveDevice(blk());
      d.addStatus(Status.STOP);
      await settle();
      t.equal(sim.phase, 'running', 'the device keeps running');
      t.notOk(d.status & Status.STOP);
      return sim;
    },
  },
  {
    rule: 'suspend-not-allowed', name: 'SUSPEND on a device without VIRTIO_F_SUSPEND',
    run: async (t) => {
      const { sim, d } = liveDevice(blk());
      d.addStatus(Status.SUSPEND);
      await settle();
      t.equal(sim.phase, 'running', 'the device keeps running');
      t.ok(d.status & Status.DRIVER_OK);
      return sim;
    },
  },
  // ---- common configuration (§4.1.3.1, §4.1.4.3.2, §4.1.5.1.2.2, the proposal) ----
  {
    rule: 'register-access-invalid', name: 'device_status read 16 bits wide',
    run: (t) => {
      const d = new SimDriver(blk());
      t.equal(d.r16(CommonCfg.DEVICE_STATUS), 0, 'reads 0');
      return d.sim;
    },
  },
  {
    rule: 'read-only-register-write', name: 'num_queues written',
    run: (t) => {
      const d = new SimDriver(blk());
      d.w16(CommonCfg.NUM_QUEUES, 5);
      t.equal(d.r16(CommonCfg.NUM_QUEUES), 1, 'unchanged');
      return d.sim;
    },
  },
  {
    rule: 'queue-size-invalid', name: 'a split queue_size that is not a power of 2',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      d.selectQueue(0);
      d.w16(CommonCfg.QUEUE_SIZE, 48);
      t.equal(d.r16(CommonCfg.QUEUE_SIZE), 256, 'unchanged');
      return d.sim;
    },
  },
  {
    rule: 'queue-config-while-enabled', name: 'queue_desc written after queue_enable',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      const ring = new SplitRing(d, 8);
      d.setupQueue(0, ring);
      d.write64(CommonCfg.QUEUE_DESC, 0x4000n);
      t.equal(d.r32(CommonCfg.QUEUE_DESC) >>> 0, Number(ring.desc.iova & 0xffff_ffffn), 'unchanged');
      return d.sim;
    },
  },
  {
    rule: 'queue-config-out-of-window', name: 'queue_size written before FEATURES_OK',
    run: (t) => {
      const d = new SimDriver(blk());
      d.selectQueue(0);
      d.w16(CommonCfg.QUEUE_SIZE, 32);
      t.equal(d.r16(CommonCfg.QUEUE_SIZE), 256, 'unchanged');
      return d.sim;
    },
  },
  {
    rule: 'queue-enable-zero', name: '0 written to queue_enable',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      d.setupQueue(0, new SplitRing(d, 8));
      d.w16(CommonCfg.QUEUE_ENABLE, 0);
      t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 1, 'still enabled');
      return d.sim;
    },
  },
  {
    rule: 'msix-vector-out-of-range', name: 'config_msix_vector beyond the table',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      t.equal(d.setConfigVector(7), VIRTIO_MSI_NO_VECTOR, 'reads back NO_VECTOR');
      return d.sim;
    },
  },
  {
    rule: 'msix-vector-unverified', name: 'config_msix_vector mapped and never read back',
    run: (t) => {
      const d = new SimDriver(blk());
      d.start();
      d.w16(CommonCfg.CONFIG_MSIX_VECTOR, 1);
      d.setupQueue(0, new SplitRing(d, 8));
      d.driverOk();
      t.ok(d.status & Status.DRIVER_OK, 'the device went live anyway');
      return d.sim;
    },
  },
  {
    rule: 'state-write-out-of-window', name: 'queue state written after DRIVER_OK',
    run: async (t) => {
      const { sim, d } = liveDevice(ringStateBlk(), 'split', RING_STATE);
      d.writeVqState(0, { avail: 3, used: 3 });
      d.addStatus(Status.STOP);
      await d.waitStatus((s) => (s & Status.STOP) !== 0);
      t.same(d.readVqState(0), { avail: 0, used: 0 }, 'the state was not taken');
      return sim;
    },
  },
  {
    rule: 'state-read-not-stopped', name: 'queue state read from a running device',
    run: (t) => {
      const { sim, d } = liveDevice(ringStateBlk(), 'split', RING_STATE);
      t.same(d.readVqState(0), { avail: 0, used: 0 }, 'the live values');
      return sim;
    },
  },
  {
    rule: 'state-not-written', name: 'a queue enabled without its state, RING_STATE negotiated',
    run: (t) => {
      const d = new SimDriver(ringStateBlk());
      d.start(RING_STATE);
      d.setupQueue(0, new SplitRing(d, 8));
      d.driverOk();
      t.ok(d.status & Status.DRIVER_OK, 'the device starts from the initial state');
      return d.sim;
    },
  },
  {
    rule: 'config-access-invalid', name: 'capacity (le64) read 8 bits wide',
    run: (t) => {
      const d = new SimDriver(blk());
      t.equal(d.config8(BlkConfig.CAPACITY), 0, 'reads 0');
      return d.sim;
    },
  },
  {
    rule: 'config-field-not-offered', name: 'geometry read, GEOMETRY not offered',
    run: (t) => {
      const d = new SimDriver(blk());
      t.equal(d.config16(BlkConfig.GEOMETRY), 0, 'the field reads as it is');
      return d.sim;
    },
  },
  // ---- notifications (§3.1.1, §4.1.5.2, 1.4 §3.4.1) ----
  {
    rule: 'notify-before-driver-ok', name: 'a notification before DRIVER_OK',
    run: async (t) => {
      const d = new SimDriver(blk());
      d.start();
      const ring = new SplitRing(d, 8);
      d.setupQueue(0, ring);
      const r = blkRequest(d, BlkReq.FLUSH, 0n);
      await send(d, ring, r.segs);
      t.equal(ring.usedIdx, 0, 'nothing was processed');
      return d.sim;
    },
  },
  {
    rule: 'notify-invalid', name: 'a 32-bit write at the notify address',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk());
      ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
      d.bar.write32(d.cap(2).offset, 0);
      await settle();
      t.equal(sim.stats.notifications[0], 0, 'not a notification');
      return sim;
    },
  },
  {
    rule: 'notify-while-suspended', name: 'a notification after SUSPEND',
    run: async (t) => {
      const { sim, d } = liveDevice(blk({ state: { suspend: true } }), 'split', bit(Feature.SUSPEND));
      d.addStatus(Status.SUSPEND);
      await d.waitStatus((s) => (s & Status.SUSPEND) !== 0);
      d.notify(0);
      await settle();
      t.equal(sim.phase, 'suspended', 'ignored');
      return sim;
    },
  },
  {
    rule: 'avail-while-suspended', name: 'a buffer made available while suspended',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk({ state: { suspend: true } }), 'packed', bit(Feature.SUSPEND));
      d.addStatus(Status.SUSPEND);
      await d.waitStatus((s) => (s & Status.SUSPEND) !== 0);
      const r = blkRequest(d, BlkReq.FLUSH, 0n);
      ring.add(r.segs);
      d.w8(CommonCfg.DEVICE_STATUS, (d.status & ~Status.SUSPEND) | Status.DRIVER_OK);
      await settle();
      t.equal(r.status.bytes[0], BlkStatus.OK, 'served after the resume');
      return sim;
    },
  },
  // ---- PCI configuration space (§4.1.4.1, §4.1.4.9.2, PCI 3.0) ----
  {
    rule: 'capability-write', name: 'the common capability\'s bar byte written',
    run: (t) => {
      const sim = blk();
      sim.fn.configWrite8(CapAt.COMMON + PciCapField.BAR, 2);
      t.equal(sim.fn.configRead8(CapAt.COMMON + PciCapField.BAR), 4, 'unchanged');
      return sim;
    },
  },
  {
    rule: 'pci-cfg-access-invalid', name: 'pci_cfg_data aimed outside every virtio structure',
    run: (t) => {
      const sim = blk();
      sim.fn.configWrite8(CapAt.PCI_CFG + PciCapField.BAR, 4);
      sim.fn.configWrite32(CapAt.PCI_CFG + PciCapField.OFFSET, 0x5000);
      sim.fn.configWrite32(CapAt.PCI_CFG + PciCapField.LENGTH, 4);
      t.equal(sim.fn.configRead32(CapAt.PCI_CFG + 16), 0, 'no access carried out');
      return sim;
    },
  },
  {
    rule: 'bus-master-disabled', name: 'a request with Bus Master Enable off',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk());
      sim.fn.configWrite16(PciConfig.COMMAND, d.commandRegister & ~PciCommand.BUS_MASTER);
      await request(d, ring, BlkReq.FLUSH, 0n);
      t.equal((ring as SplitRing).usedIdx, 0, 'nothing used');
      return sim;
    },
  },
  // ---- rings (§2.7, §2.8, §3.3.1, §6.1) ----
  {
    rule: 'ring-misaligned', name: 'a descriptor table 8 bytes off its 16-byte alignment',
    run: (t) => {
      const d = new SimDriver(blk());
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
      const d = new SimDriver(blk());
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
      const { sim, d, ring } = liveDevice(blk());
      await send(d, ring, [{ addr: 0xdead_0000n, len: 16 }, buf(d, true)]);
      t.equal((ring as SplitRing).usedIdx, 0, 'nothing used');
      return sim;
    },
  },
  {
    rule: 'avail-idx-decreased', name: 'avail->idx moved back by one',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk({ completion: 'manual' }));
      const split = ring as SplitRing;
      split.add(blkRequest(d, BlkReq.FLUSH, 0n).segs);
      await send(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs);
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
      const { sim, d, ring } = liveDevice(blk());
      (ring as SplitRing).avail.setUint16(2, 20, true);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'avail-head-out-of-range', name: 'the available ring names descriptor 9 of 8',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      (ring as SplitRing).publish(9);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'desc-next-out-of-range', name: 'next = 8 in a table of 8',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, buf(d), DescFlag.NEXT, 8);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'chain-loop', name: 'two descriptors linked to each other',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, buf(d), DescFlag.NEXT, 1);
      split.writeDesc(split.descs, 1, buf(d), DescFlag.NEXT, 0);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'chain-longer-than-queue', name: 'an indirect table of 10 descriptors on a ring of 8',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk(), 'split', INDIRECT);
      sim.disk.fill(0x5a, 0, 8 * BLK_SECTOR_SIZE);
      const header = blkRequest(d, BlkReq.IN, 0n);
      const data = Array.from({ length: 8 }, () => d.alloc(BLK_SECTOR_SIZE));
      await send(d, ring, [header.segs[0]!, ...data.map((r) => ({ addr: r.iova, len: r.size, write: true })), header.segs[1]!], { indirect: true });
      t.equal(header.status.bytes[0], BlkStatus.OK, 'served anyway');
      t.ok(data.every((r) => r.bytes.every((b) => b === 0x5a)), 'with the data');
      return sim;
    },
  },
  {
    rule: 'chain-too-large', name: 'an indirect table naming 257 × 16 MiB, beyond 2^32 bytes',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk(), 'split', INDIRECT);
      const big = d.alloc(1 << 24);
      const r = blkRequest(d, BlkReq.OUT, 0n);
      const middle = Array.from({ length: 257 }, () => ({ addr: big.iova, len: big.size }));
      await send(d, ring, [r.segs[0]!, ...middle, r.segs[1]!], { indirect: true });
      return sim;
    },
  },
  {
    rule: 'readable-after-writable', name: 'a readable descriptor after a writable one',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      await send(d, ring, [buf(d, true), buf(d)]);
      return sim;
    },
  },
  {
    rule: 'zero-length-descriptor', name: 'a descriptor of length 0',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      await send(d, ring, [{ addr: d.alloc(8).iova, len: 0 }]);
      return sim;
    },
  },
  {
    rule: 'indirect-not-negotiated', name: 'INDIRECT without VIRTIO_F_INDIRECT_DESC',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      await send(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs, { indirect: true });
      return sim;
    },
  },
  {
    rule: 'indirect-nested', name: 'an indirect table inside an indirect table',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk(), 'split', INDIRECT);
      const split = ring as SplitRing;
      const table = d.alloc(16);
      split.writeDesc(new DataView(table.bytes.buffer, table.bytes.byteOffset), 0, buf(d), DescFlag.INDIRECT, 0);
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
      const { sim, d, ring } = liveDevice(blk(), 'split', INDIRECT);
      const split = ring as SplitRing;
      split.writeDesc(split.descs, 0, buf(d), DescFlag.INDIRECT | DescFlag.NEXT, 1);
      split.publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'indirect-table-invalid', name: 'an indirect table of 24 bytes',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk(), 'split', INDIRECT);
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
      const { sim, d, ring } = liveDevice(blk(), 'packed', INDIRECT);
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
      const { sim, d, ring } = liveDevice(blk({ completion: 'manual' }));
      await send(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs);
      (ring as SplitRing).publish(0);
      d.notify(0);
      await settle();
      return sim;
    },
  },
  {
    rule: 'list-partially-available', name: 'packed: a list whose second descriptor is not available',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk(), 'packed');
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
      const { sim, d, ring } = liveDevice(blk({ completion: 'manual' }), 'packed', INDIRECT, 4);
      for (let i = 0; i < 4; i++) ring.add(blkRequest(d, BlkReq.FLUSH, 0n).segs, { indirect: true });
      d.notify(0);
      await settle();
      t.equal(sim.held, 4, 'four held, the ring full');
      await send(d, ring, blkRequest(d, BlkReq.FLUSH, 0n).segs, { indirect: true });
      return sim;
    },
  },
  {
    rule: 'avail-flags-invalid', name: 'split: avail->flags 1 with EVENT_IDX',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk(), 'split', bit(Feature.EVENT_IDX));
      (ring as SplitRing).availFlags = 1;
      t.equal(await request(d, ring, BlkReq.FLUSH, 0n), BlkStatus.OK, 'served');
      return sim;
    },
  },
  {
    rule: 'driver-event-invalid', name: 'packed: the reserved event flags value 3',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk(), 'packed');
      (ring as PackedRing).setDriverEvent(3);
      t.equal(await request(d, ring, BlkReq.FLUSH, 0n), BlkStatus.OK, 'served');
      return sim;
    },
  },
  // ---- virtqueue state and DEVICE_STATE (the proposal) ----
  {
    rule: 'state-impossible', name: 'split state: used ahead of available',
    run: (t) => {
      const d = new SimDriver(ringStateBlk());
      d.start(RING_STATE);
      d.setupQueue(0, new SplitRing(d, 8), { avail: 0, used: 5 });
      d.driverOk();
      t.match(d.sim.failure?.message, /impossible/);
      return d.sim;
    },
  },
  {
    rule: 'state-held-mismatch', name: 'two requests between used and available, no LOAD (DEVICE_STATE negotiated)',
    run: () => {
      const d = new SimDriver(ringStateBlk());
      d.start(RING_STATE | bit(Feature.DEVICE_STATE));
      d.setupQueue(0, new SplitRing(d, 8), { avail: 2, used: 0 });
      d.driverOk();
      return d.sim;
    },
  },
  {
    rule: 'state-command-not-now', name: 'SAVE while the device runs',
    run: (t) => {
      const { sim, d } = liveDevice(ringStateBlk(), 'split', RING_STATE | bit(Feature.DEVICE_STATE));
      t.equal(d.deviceStateCommand(DeviceStateCmd.SAVE, d.alloc(8)), DeviceStateRefusal.NOT_NOW, 'CMD reads NOT_NOW');
      return sim;
    },
  },
  {
    rule: 'state-command-unknown', name: 'command 7',
    run: (t) => {
      const { sim, d } = liveDevice(ringStateBlk(), 'split', RING_STATE | bit(Feature.DEVICE_STATE));
      t.equal(d.deviceStateCommand(7, d.alloc(8)), DeviceStateRefusal.UNKNOWN_COMMAND, 'CMD reads UNKNOWN_COMMAND');
      return sim;
    },
  },
  {
    rule: 'state-mailbox-address', name: 'LOAD from an address outside the driver\'s memory',
    run: (t) => {
      const d = new SimDriver(ringStateBlk());
      d.start(RING_STATE | bit(Feature.DEVICE_STATE));
      t.equal(d.deviceStateCommand(DeviceStateCmd.LOAD, { iova: 0x1234n }, 40), DeviceStateRefusal.BAD_ADDRESS, 'CMD reads BAD_ADDRESS');
      return d.sim;
    },
  },
  // ---- device types (§5.1, §5.2, §5.4) ----
  {
    rule: 'blk-request-malformed', name: 'a blk request without a status byte',
    run: async () => {
      const { sim, d, ring } = liveDevice(blk());
      await send(d, ring, [buf(d)]);
      return sim;
    },
  },
  {
    rule: 'blk-beyond-capacity', name: 'a read at sector 100 of 64',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk());
      t.equal(await request(d, ring, BlkReq.IN, 100n, BLK_SECTOR_SIZE), BlkStatus.IOERR, 'answered IOERR');
      return sim;
    },
  },
  {
    rule: 'blk-flush-sector', name: 'a FLUSH with sector 5',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk());
      t.equal(await request(d, ring, BlkReq.FLUSH, 5n), BlkStatus.OK, 'served');
      return sim;
    },
  },
  {
    rule: 'blk-data-length', name: 'a read of 100 bytes',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk());
      t.equal(await request(d, ring, BlkReq.IN, 0n, 100), BlkStatus.IOERR, 'answered IOERR');
      return sim;
    },
  },
  {
    rule: 'blk-too-many-ranges', name: 'a DISCARD of two ranges, max_discard_seg 1',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk({ discard: { maxSegments: 1 } }), 'split', bit(BlkFeature.DISCARD));
      const ranges = new Uint8Array(32);
      new DataView(ranges.buffer).setUint32(8, 1, true);
      new DataView(ranges.buffer).setUint32(24, 1, true);
      t.equal(await request(d, ring, BlkReq.DISCARD, 0n, ranges), BlkStatus.IOERR, 'answered IOERR');
      return sim;
    },
  },
  {
    rule: 'blk-discard-unmap', name: 'a DISCARD with the unmap bit',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(blk({ discard: {} }), 'split', bit(BlkFeature.DISCARD));
      const range = new Uint8Array(16);
      new DataView(range.buffer).setUint32(8, 1, true);
      new DataView(range.buffer).setUint32(12, BLK_DISCARD_FLAG_UNMAP, true);
      t.equal(await request(d, ring, BlkReq.DISCARD, 0n, range), BlkStatus.UNSUPP, 'answered UNSUPP');
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
      await send(d, ring, [buf(d), buf(d, true)]);
      return sim;
    },
  },
];

/** The recorded violations are exactly the case's; the device reacted as the rule's action says. */
function check(t: Test, sim: SimDevice, c: Case): void {
  t.same(ruleIds(sim).sort(), [c.rule, ...(c.also ?? [])].sort(), `recorded: ${c.rule}`);
  const v = sim.violations.find((x) => x.id === c.rule);
  const rule = RULES[c.rule];
  t.equal(v?.section, rule.section, `section ${rule.section}`);
  t.equal(v?.action, rule.action, `action ${rule.action}`);
  t.ok(v && v.message.length > 0 && v.count >= 1, `message: ${v?.message ?? ''}`);
  const status = new SimDriver(sim).status;
  if (rule.action === 'needs-reset') {
    t.ok(status & Status.DEVICE_NEEDS_RESET, 'DEVICE_NEEDS_RESET');
    t.equal((sim.failure as { rule?: string } | undefined)?.rule, c.rule, 'failure names the rule');
    t.equal((sim.failure as { code?: string } | undefined)?.code, rule.code, `failure code ${rule.code ?? ''}`);
  } else {
    t.notOk(status & Status.DEVICE_NEEDS_RESET, 'no DEVICE_NEEDS_RESET');
    t.equal(sim.failure, undefined, 'no failure');
  }
}

for (const c of cases) {
  t.test(`${c.rule}: ${c.name}`, async (t) => {
    const sim = await c.run(t);
    check(t, sim, c);
    sim.fn.close();
  });
}

t.test('a correct bring-up records nothing; clearViolations() forgets; a reset does not', async (t) => {
  const { sim, d } = liveDevice(ringStateBlk(), 'packed', RING_STATE);
  t.same(ruleIds(sim), [], 'nothing after a by-the-book bring-up');
  d.w16(CommonCfg.NUM_QUEUES, 1);
  d.w16(CommonCfg.NUM_QUEUES, 1);
  t.same(sim.violations.map((v) => [v.id, v.count]), [['read-only-register-write', 2]], 'one entry, counted twice');
  d.reset();
  t.same(ruleIds(sim), ['read-only-register-write'], 'kept across a reset');
  sim.clearViolations();
  t.same(ruleIds(sim), [], 'forgotten');
});

t.test('every rule of the catalogue has a case here', async (t) => {
  const covered = new Set(cases.map((c) => c.rule));
  t.same(Object.keys(RULES).filter((id) => !covered.has(id as RuleId)), [], 'no rule without a case');
  t.equal(cases.length, covered.size, 'one case per rule');
});

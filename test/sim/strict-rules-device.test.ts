// Every driver rule of the strict reference device checked at its registers (lib/sim/virtio/rules.ts:
// status, registers, notifications, PCI configuration, virtqueue state and DEVICE_STATE), each
// broken once by the hand driver: the device records exactly that rule — id, spec section,
// action — and for 'needs-reset' rules sets DEVICE_NEEDS_RESET with a `failure` naming it; for
// 'ignore' rules it does not, and the case checks what became of the access. The rings and the
// device types are in strict-rules-rings.test.ts.

import t from 'tap';
import { CapAt } from '../../lib/sim/pci/config.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { PciCommand, PciConfig } from '../../lib/pci/config.js';
import {
  BlkConfig, BlkFeature, BlkReq, BlkStatus, CommonCfg, DeviceStateCmd, DeviceStateRefusal, Feature, NetFeature, PciCapField,
  Status, VIRTIO_MSI_NO_VECTOR, bit,
} from '../../lib/spec/index.js';
import {
  SimDriver, SplitRing, blkRequest, blkStatus, liveDevice, ruleIds, runRuleCases, sendChain, settle, smallBlk, type RuleCase,
} from '../support/sim-driver.js';

const V1 = bit(Feature.VERSION_1);
const RING_STATE = bit(Feature.RING_STATE);

const cases: RuleCase[] = [
  // ---- device status (virtio 1.2 §2.1, §3.1.1, §4.1.4.3.2, the proposal, 1.4 §3.4) ----
  {
    rule: 'status-bit-cleared', name: 'a status write without FEATURES_OK after it was set',
    run: (t) => {
      const d = new SimDriver(smallBlk());
      d.start();
      d.w8(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE);
      t.equal(d.status & Status.FEATURES_OK, Status.FEATURES_OK, 'the bit stays set');
      return d.sim;
    },
  },
  {
    rule: 'stop-cleared', name: 'a status write without STOP once it shows',
    run: async (t) => {
      const { sim, d } = liveDevice(smallBlk({ state: { ringState: true } }), 'split', RING_STATE);
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
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
      d.addStatus(Status.DRIVER);
      t.equal(d.status, 0, 'DRIVER did not stick');
      return d.sim;
    },
  },
  {
    rule: 'reinit-before-reset-read', name: 'ACKNOWLEDGE right after the reset write, device_status never read',
    run: (t) => {
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
      t.notOk(d.negotiate(bit(BlkFeature.FLUSH)), 'FEATURES_OK does not stick');
      return d.sim;
    },
  },
  {
    rule: 'stop-not-allowed', name: 'STOP on a device without RING_STATE',
    run: async (t) => {
      const { sim, d } = liveDevice(smallBlk());
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
      const { sim, d } = liveDevice(smallBlk());
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
      const d = new SimDriver(smallBlk());
      t.equal(d.r16(CommonCfg.DEVICE_STATUS), 0, 'reads 0');
      return d.sim;
    },
  },
  {
    rule: 'read-only-register-write', name: 'num_queues written',
    run: (t) => {
      const d = new SimDriver(smallBlk());
      d.w16(CommonCfg.NUM_QUEUES, 5);
      t.equal(d.r16(CommonCfg.NUM_QUEUES), 1, 'unchanged');
      return d.sim;
    },
  },
  {
    rule: 'queue-size-invalid', name: 'a split queue_size that is not a power of 2',
    run: (t) => {
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
      d.selectQueue(0);
      d.w16(CommonCfg.QUEUE_SIZE, 32);
      t.equal(d.r16(CommonCfg.QUEUE_SIZE), 256, 'unchanged');
      return d.sim;
    },
  },
  {
    rule: 'queue-enable-zero', name: '0 written to queue_enable',
    run: (t) => {
      const d = new SimDriver(smallBlk());
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
      const d = new SimDriver(smallBlk());
      d.start();
      t.equal(d.setConfigVector(7), VIRTIO_MSI_NO_VECTOR, 'reads back NO_VECTOR');
      return d.sim;
    },
  },
  {
    rule: 'msix-vector-unverified', name: 'config_msix_vector mapped and never read back',
    run: (t) => {
      const d = new SimDriver(smallBlk());
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
      const { sim, d } = liveDevice(smallBlk({ state: { ringState: true } }), 'split', RING_STATE);
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
      const { sim, d } = liveDevice(smallBlk({ state: { ringState: true } }), 'split', RING_STATE);
      t.same(d.readVqState(0), { avail: 0, used: 0 }, 'the live values');
      return sim;
    },
  },
  {
    rule: 'state-not-written', name: 'a queue enabled without its state, RING_STATE negotiated',
    run: (t) => {
      const d = new SimDriver(smallBlk({ state: { ringState: true } }));
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
      const d = new SimDriver(smallBlk());
      t.equal(d.config8(BlkConfig.CAPACITY), 0, 'reads 0');
      return d.sim;
    },
  },
  {
    rule: 'config-field-not-offered', name: 'geometry read, GEOMETRY not offered',
    run: (t) => {
      const d = new SimDriver(smallBlk());
      t.equal(d.config16(BlkConfig.GEOMETRY), 0, 'the field reads as it is');
      return d.sim;
    },
  },
  // ---- notifications (§3.1.1, §4.1.5.2, 1.4 §3.4.1) ----
  {
    rule: 'notify-before-driver-ok', name: 'a notification before DRIVER_OK',
    run: async (t) => {
      const d = new SimDriver(smallBlk());
      d.start();
      const ring = new SplitRing(d, 8);
      d.setupQueue(0, ring);
      const r = blkRequest(d, BlkReq.FLUSH, 0n);
      await sendChain(d, ring, r.segs);
      t.equal(ring.usedIdx, 0, 'nothing was processed');
      return d.sim;
    },
  },
  {
    rule: 'notify-invalid', name: 'a 32-bit write at the notify address',
    run: async (t) => {
      const { sim, d, ring } = liveDevice(smallBlk());
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
      const { sim, d } = liveDevice(smallBlk({ state: { suspend: true } }), 'split', bit(Feature.SUSPEND));
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
      const { sim, d, ring } = liveDevice(smallBlk({ state: { suspend: true } }), 'packed', bit(Feature.SUSPEND));
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
      const sim = smallBlk();
      sim.fn.configWrite8(CapAt.COMMON + PciCapField.BAR, 2);
      t.equal(sim.fn.configRead8(CapAt.COMMON + PciCapField.BAR), 4, 'unchanged');
      return sim;
    },
  },
  {
    rule: 'pci-cfg-access-invalid', name: 'pci_cfg_data aimed outside every virtio structure',
    run: (t) => {
      const sim = smallBlk();
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
      const { sim, d, ring } = liveDevice(smallBlk());
      sim.fn.configWrite16(PciConfig.COMMAND, d.commandRegister & ~PciCommand.BUS_MASTER);
      await blkStatus(d, ring, BlkReq.FLUSH, 0n);
      t.equal((ring as SplitRing).usedIdx, 0, 'nothing used');
      return sim;
    },
  },
  // ---- virtqueue state and DEVICE_STATE (the proposal) ----
  {
    rule: 'state-impossible', name: 'split state: used ahead of available',
    run: (t) => {
      const d = new SimDriver(smallBlk({ state: { ringState: true } }));
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
      const d = new SimDriver(smallBlk({ state: { ringState: true } }));
      d.start(RING_STATE | bit(Feature.DEVICE_STATE));
      d.setupQueue(0, new SplitRing(d, 8), { avail: 2, used: 0 });
      d.driverOk();
      return d.sim;
    },
  },
  {
    rule: 'state-command-not-now', name: 'SAVE while the device runs',
    run: (t) => {
      const { sim, d } = liveDevice(smallBlk({ state: { ringState: true } }), 'split', RING_STATE | bit(Feature.DEVICE_STATE));
      t.equal(d.deviceStateCommand(DeviceStateCmd.SAVE, d.alloc(8)), DeviceStateRefusal.NOT_NOW, 'CMD reads NOT_NOW');
      return sim;
    },
  },
  {
    rule: 'state-command-unknown', name: 'command 7',
    run: (t) => {
      const { sim, d } = liveDevice(smallBlk({ state: { ringState: true } }), 'split', RING_STATE | bit(Feature.DEVICE_STATE));
      t.equal(d.deviceStateCommand(7, d.alloc(8)), DeviceStateRefusal.UNKNOWN_COMMAND, 'CMD reads UNKNOWN_COMMAND');
      return sim;
    },
  },
  {
    rule: 'state-mailbox-address', name: 'LOAD from an address outside the driver\'s memory',
    run: (t) => {
      const d = new SimDriver(smallBlk({ state: { ringState: true } }));
      d.start(RING_STATE | bit(Feature.DEVICE_STATE));
      t.equal(d.deviceStateCommand(DeviceStateCmd.LOAD, { iova: 0x1234n }, 40), DeviceStateRefusal.BAD_ADDRESS, 'CMD reads BAD_ADDRESS');
      return d.sim;
    },
  },
];

runRuleCases(t, cases, ['status', 'registers', 'notifications', 'pci', 'state']);

t.test('a correct bring-up records nothing; clearViolations() forgets; a reset does not', async (t) => {
  const { sim, d } = liveDevice(smallBlk({ state: { ringState: true } }), 'packed', RING_STATE);
  t.same(ruleIds(sim), [], 'nothing after a by-the-book bring-up');
  d.w16(CommonCfg.NUM_QUEUES, 1);
  d.w16(CommonCfg.NUM_QUEUES, 1);
  t.same(sim.violations.map((v) => [v.id, v.count]), [['read-only-register-write', 2]], 'one entry, counted twice');
  d.reset();
  t.same(ruleIds(sim), ['read-only-register-write'], 'kept across a reset');
  sim.clearViolations();
  t.same(ruleIds(sim), [], 'forgotten');
});

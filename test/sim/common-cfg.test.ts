// Common configuration semantics: feature windows, the status machine, queue registers, reset,
// MSI-X vector mapping, config_generation.
import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import {
  BlkConfig, BlkFeature, CommonCfg, Feature, Isr, Status, VIRTIO_MSI_NO_VECTOR, bit,
} from '../../lib/spec/index.js';
import { SimDriver, SplitRing, ruleIds, settle } from '../support/sim-driver.js';

t.test('device_feature select windows', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk', offer: { packed: false, accessPlatform: false } }));
  d.w32(CommonCfg.DEVICE_FEATURE_SELECT, 0);
  const low = d.r32(CommonCfg.DEVICE_FEATURE) >>> 0;
  t.ok(low & (1 << BlkFeature.FLUSH), 'FLUSH in window 0');
  t.ok(low & (1 << Feature.INDIRECT_DESC), 'INDIRECT_DESC in window 0');
  t.notOk(low & (1 << BlkFeature.MQ), 'no MQ with one queue');
  d.w32(CommonCfg.DEVICE_FEATURE_SELECT, 1);
  t.equal(d.r32(CommonCfg.DEVICE_FEATURE), 1, 'window 1: VERSION_1 only');
  t.equal(d.r32(CommonCfg.DEVICE_FEATURE_SELECT), 1);
  d.w32(CommonCfg.DEVICE_FEATURE_SELECT, 2);
  t.equal(d.r32(CommonCfg.DEVICE_FEATURE), 0, 'window 2 is empty');
  d.w32(CommonCfg.DRIVER_FEATURE_SELECT, 1);
  d.w32(CommonCfg.DRIVER_FEATURE, 1);
  d.w32(CommonCfg.DRIVER_FEATURE_SELECT, 0);
  t.equal(d.r32(CommonCfg.DRIVER_FEATURE), 0, 'driver windows are separate');
  d.w32(CommonCfg.DRIVER_FEATURE_SELECT, 1);
  t.equal(d.r32(CommonCfg.DRIVER_FEATURE), 1);
});

t.test('FEATURES_OK is refused for unoffered bits or without VERSION_1', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk', offer: { packed: false } }));
  t.notOk(d.negotiate(bit(Feature.VERSION_1) | bit(Feature.RING_PACKED)), 'packed was not offered');
  t.equal(d.status & Status.FEATURES_OK, 0);
  t.notOk(d.negotiate(bit(BlkFeature.FLUSH)), 'no VERSION_1');
  t.notOk(d.negotiate(bit(Feature.VERSION_1) | bit(50)), 'a bit in window 1 nobody offers');
  t.ok(d.negotiate(bit(Feature.VERSION_1) | bit(BlkFeature.FLUSH)));
  d.writeDriverFeatures(bit(Feature.VERSION_1) | bit(Feature.EVENT_IDX));
  d.w32(CommonCfg.DRIVER_FEATURE_SELECT, 0);
  t.equal(d.r32(CommonCfg.DRIVER_FEATURE), 1 << BlkFeature.FLUSH, 'features are fixed after FEATURES_OK');
  t.same(ruleIds(d.sim), ['feature-not-offered', 'version-1-not-accepted', 'features-written-late'], 'each refusal recorded (strict-rules.test.ts)');
});

t.test('status machine: FEATURES_OK needs DRIVER, DRIVER_OK needs FEATURES_OK, bits never clear', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk' }));
  d.addStatus(Status.ACKNOWLEDGE);
  d.writeDriverFeatures(bit(Feature.VERSION_1));
  d.addStatus(Status.FEATURES_OK);
  t.equal(d.status, Status.ACKNOWLEDGE, 'FEATURES_OK before DRIVER is refused');
  d.addStatus(Status.DRIVER | Status.DRIVER_OK);
  t.equal(d.status, Status.ACKNOWLEDGE | Status.DRIVER, 'DRIVER_OK before FEATURES_OK is refused');
  d.w8(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE);
  t.equal(d.status, Status.ACKNOWLEDGE | Status.DRIVER, 'the driver cannot clear a bit');
  d.w8(CommonCfg.DEVICE_STATUS, Status.DRIVER | Status.DEVICE_NEEDS_RESET);
  t.equal(d.status & Status.DEVICE_NEEDS_RESET, 0, 'the driver cannot set NEEDS_RESET');
  t.same(ruleIds(d.sim), ['features-written-early', 'status-out-of-order', 'status-bit-cleared'], 'recorded');
});

t.test('queue registers: size rules, 64-bit halves, notify_off, vectors, unknown queues', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk', queues: 2, queueMaxSize: 64 }));
  d.selectQueue(0);
  d.w16(CommonCfg.QUEUE_SIZE, 32);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 64, 'ignored before FEATURES_OK');
  d.start();
  d.w16(CommonCfg.QUEUE_SIZE, 48);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 64, 'split: not a power of two');
  d.w16(CommonCfg.QUEUE_SIZE, 128);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 64, 'above the maximum');
  d.w16(CommonCfg.QUEUE_SIZE, 16);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 16, 'lowered');
  d.write64(CommonCfg.QUEUE_DESC, 0x1_2345_6780n);
  t.equal(d.r32(CommonCfg.QUEUE_DESC), 0x2345_6780);
  t.equal(d.r32(CommonCfg.QUEUE_DESC + 4), 1);
  d.w16(CommonCfg.QUEUE_MSIX_VECTOR, 2);
  t.equal(d.r16(CommonCfg.QUEUE_MSIX_VECTOR), 2);
  d.w16(CommonCfg.QUEUE_MSIX_VECTOR, 3);
  t.equal(d.r16(CommonCfg.QUEUE_MSIX_VECTOR), VIRTIO_MSI_NO_VECTOR, 'beyond the 3-entry table');
  d.w16(CommonCfg.CONFIG_MSIX_VECTOR, 7);
  t.equal(d.r16(CommonCfg.CONFIG_MSIX_VECTOR), VIRTIO_MSI_NO_VECTOR);
  d.selectQueue(1);
  t.equal(d.r16(CommonCfg.QUEUE_NOTIFY_OFF), 1);
  d.selectQueue(2);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 0, 'no queue 2');
  t.equal(d.r16(CommonCfg.QUEUE_MSIX_VECTOR), VIRTIO_MSI_NO_VECTOR);
  t.same(ruleIds(d.sim), ['queue-config-out-of-window', 'queue-size-invalid', 'msix-vector-out-of-range', 'msix-vector-out-of-range'], 'recorded (the queue vector, the config vector)');
});

t.test('packed rings allow any queue size', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk', queueMaxSize: 64 }));
  d.start(bit(Feature.RING_PACKED));
  d.selectQueue(0);
  d.w16(CommonCfg.QUEUE_SIZE, 48);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 48);
  d.w16(CommonCfg.QUEUE_SIZE, 0);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 48, '0 is never a size');
  t.same(ruleIds(d.sim), ['queue-size-invalid'], 'recorded');
});

t.test('reset (write 0) clears features, status, vectors and all queue state', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const d = new SimDriver(sim);
  d.start(bit(Feature.EVENT_IDX));
  const ring = new SplitRing(d, 8);
  d.setupQueue(0, ring);
  d.w16(CommonCfg.CONFIG_MSIX_VECTOR, 0);
  d.driverOk();
  ring.add([{ addr: d.alloc(16).iova, len: 16 }, { addr: d.alloc(1).iova, len: 1, write: true }]);
  d.notify(0);
  await settle();
  t.equal(sim.held, 1);
  d.reset();
  t.equal(d.status, 0, 'reads 0 once reset');
  t.equal(sim.held, 0, 'in-flight requests forgotten');
  t.equal(d.r16(CommonCfg.CONFIG_MSIX_VECTOR), VIRTIO_MSI_NO_VECTOR);
  d.selectQueue(0);
  t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 0);
  t.equal(d.r16(CommonCfg.QUEUE_SIZE), 256, 'size back to the maximum');
  t.equal(d.r16(CommonCfg.QUEUE_MSIX_VECTOR), VIRTIO_MSI_NO_VECTOR);
  t.equal(d.r32(CommonCfg.QUEUE_DESC), 0);
  d.w32(CommonCfg.DRIVER_FEATURE_SELECT, 0);
  t.equal(d.r32(CommonCfg.DRIVER_FEATURE), 0);
  t.equal(sim.completeNow(), 0, 'nothing left to complete');
  t.equal(ring.usedIdx, 0, 'the forgotten request never shows up');
});

t.test('queue_enable: only after FEATURES_OK, never after DRIVER_OK; 0 is ignored', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk' }));
  d.start();
  const ring = new SplitRing(d, 8);
  d.setupQueue(0, ring);
  t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 1);
  d.w16(CommonCfg.QUEUE_ENABLE, 0);
  t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 1, 'writing 0 does not disable');
  d.write64(CommonCfg.QUEUE_DESC, 0x4000n);
  t.equal(d.r32(CommonCfg.QUEUE_DESC) >>> 0, Number(ring.desc.iova & 0xffff_ffffn), 'an enabled queue keeps its addresses');
  t.same(ruleIds(d.sim), ['queue-enable-zero', 'queue-config-while-enabled'], 'recorded');
});

t.test('config_generation changes across a config change; config interrupt sent', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 8 });
  const d = new SimDriver(sim);
  d.start();
  d.w16(CommonCfg.CONFIG_MSIX_VECTOR, 1);
  d.driverOk();
  const before = d.r8(CommonCfg.CONFIG_GENERATION);
  t.equal(d.config32(BlkConfig.CAPACITY), 8);
  sim.resize(16);
  t.equal(d.config32(BlkConfig.CAPACITY), 16);
  t.not(d.r8(CommonCfg.CONFIG_GENERATION), before, 'a read that saw new data is followed by a new generation');
  const gen = d.r8(CommonCfg.CONFIG_GENERATION);
  t.equal(d.config32(BlkConfig.CAPACITY), 16);
  t.equal(d.r8(CommonCfg.CONFIG_GENERATION), gen, 'stable while nothing changes');
  await settle();
  t.same(d.vectors, [1], 'config vector delivered');
  t.equal(d.readIsr(), Isr.CONFIG);
  t.equal(d.readIsr(), 0, 'reading clears the ISR');
  t.equal(sim.stats.configInterrupts, 1);
  t.equal(sim.disk.length, 16 * 512);
});

// The virtio-pci transport against a function that lies: capability lists that loop or point
// outside their BAR, missing structures, notify offsets beyond the notify area, a device that never
// finishes a reset, configuration that keeps changing — and MSI-X with fewer vectors than queues.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { DeviceConfig } from '../../lib/virtio/config.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { BlkConfig, BlkConfigExt, CommonCfg, PciCapField, PciCapType, VIRTIO_MSI_NO_VECTOR } from '../../lib/spec/index.js';
import { PciConfig } from '../../lib/pci/config.js';
import type { PciFunction, RegisterWindow } from '../../lib/pci/function.js';
import { codeOf } from '../support/codes.js';

/** The sim's function with some config-space bytes or BAR registers replaced. */
function tampered(fn: PciFunction, config: Map<number, number>, bar?: (w: RegisterWindow) => RegisterWindow): PciFunction {
  const byte = (off: number): number => config.get(off) ?? fn.configRead8(off);
  return Object.assign(Object.create(fn) as PciFunction, {
    configRead8: byte,
    configRead16: (off: number) => byte(off) | (byte(off + 1) << 8),
    configRead32: (off: number) => (byte(off) | (byte(off + 1) << 8) | (byte(off + 2) << 16) | (byte(off + 3) << 24)) >>> 0,
    bar: (i: number) => (bar ? bar(fn.bar(i)) : fn.bar(i)),
  });
}

/** Config-space offset of the first virtio vendor capability of `type`. */
function capAt(fn: PciFunction, type: number): number {
  for (let p = fn.configRead8(PciConfig.CAPABILITIES_PTR); p !== 0; p = fn.configRead8(p + 1)) {
    if (fn.configRead8(p) === 0x09 && fn.configRead8(p + PciCapField.CFG_TYPE) === type) return p;
  }
  throw new Error(`no cap ${type}`);
}


t.test('hostile capability lists are refused with their own codes', async (t) => {
  const fn = createSimDevice({ type: 'blk' }).fn;
  const common = capAt(fn, PciCapType.COMMON);
  const notify = capAt(fn, PciCapType.NOTIFY);
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[common + 1, common]])))), 'E_CAP_INVALID', 'a capability pointing at itself');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[common + PciCapField.OFFSET + 3, 0x7f]])))), 'E_CAP_INVALID', 'an offset outside the BAR');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[common + PciCapField.CFG_TYPE, 0x42]])))), 'E_CAP_MISSING', 'no common configuration');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[common + PciCapField.LENGTH, 0x10], [common + PciCapField.LENGTH + 1, 0]])))), 'E_CAP_INVALID', 'a common configuration too short');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[notify + PciCapField.LEN, 16]])))), 'E_CAP_INVALID', 'a notify capability without its multiplier');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[PciConfig.VENDOR_ID, 0x86], [PciConfig.VENDOR_ID + 1, 0x80]])))), 'E_NOT_VIRTIO', 'another vendor');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[PciConfig.DEVICE_ID, 0x00], [PciConfig.DEVICE_ID + 1, 0x20]])))), 'E_NOT_VIRTIO', 'a device id outside virtio\'s');
  t.equal(codeOf(() => new VirtioPciTransport(tampered(fn, new Map([[common + PciCapField.BAR, 7]])))), 'E_CAP_MISSING', 'a capability naming BAR 7 is skipped (and there is no other)');
});

t.test('a queue_notify_off beyond the notification area is refused', async (t) => {
  const fn = createSimDevice({ type: 'blk' }).fn;
  const transport = new VirtioPciTransport(tampered(fn, new Map(), (w) => Object.assign(Object.create(w) as RegisterWindow, {
    read16: (off: number) => (off % 0x1000 === CommonCfg.QUEUE_NOTIFY_OFF ? 0xfff0 : w.read16(off)),
  })));
  const dev = await VirtioDevice.open(transport);
  t.throws(() => dev.setupQueue(0), { code: 'E_CAP_INVALID' });
});

t.test('a reset that never completes times out, bounded and named', async (t) => {
  const fn = createSimDevice({ type: 'blk' }).fn;
  const transport = new VirtioPciTransport(fn);
  const stuck = Object.assign(Object.create(transport) as VirtioPciTransport, { readStatus: () => 1 });
  const started = Date.now();
  await t.rejects(stuck.reset(50), { code: 'E_RESET_TIMEOUT', message: /50 ms/ });
  t.ok(Date.now() - started < 2000, 'gave up close to its bound');
});

t.test('device configuration: 64-bit reads in one generation; a config change is seen', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 1000 });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
  let changes = 0;
  dev.onConfigChange(() => changes++);
  await dev.driverOk();
  t.equal(dev.config.read64(BlkConfig.CAPACITY), 1000n);
  sim.resize(3000);
  t.equal(dev.config.read64(BlkConfig.CAPACITY), 3000n, 'the new capacity');
  for (let i = 0; i < 20 && changes === 0; i++) await new Promise((r) => setImmediate(r));
  t.ok(changes > 0, 'a configuration interrupt arrived');
  t.throws(() => dev.config.read32(BlkConfigExt.LEN), { code: 'E_INVALID_ARGUMENT' }, 'reads beyond the type\'s layout refused as the caller\'s');
  // max_discard_sectors: blk defines it, this device (no DISCARD) does not expose it — the device's lack.
  t.throws(() => dev.config.read32(BlkConfig.LEN), { code: 'E_CAP_MISSING' }, 'a field of the layout the device does not expose: E_CAP_MISSING');
  let gen = 0;
  const c = sim.fn.bar(4);
  const bar = Object.assign(Object.create(c) as RegisterWindow, { read8: (off: number) => (off === CommonCfg.CONFIG_GENERATION ? gen++ & 0xff : c.read8(off)) });
  const unstable = new VirtioPciTransport(Object.assign(Object.create(sim.fn) as PciFunction, { bar: () => bar }));
  t.throws(() => new DeviceConfig(() => unstable).read64(BlkConfig.CAPACITY), { code: 'E_CONFIG_UNSTABLE' }, 'a generation that never settles is an error, not a hang');
  await dev.close();
});

for (const vectors of [1, 2]) {
  t.test(`MSI-X with ${vectors} vector(s) for 2 queues + config: queues share vectors and still get interrupts`, async (t) => {
    const sim = createSimDevice({ type: 'net', msixVectors: vectors });
    const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
    const qs = new QueueSet(dev);
    const rx = qs.add(0, { drains: false });
    const tx = qs.add(1);
    await dev.driverOk();
    t.equal(dev.interruptMode, 'msix');
    t.ok(dev.queueHasInterrupts(0) && dev.queueHasInterrupts(1), 'both queues have a (shared) vector');
    const buf = dev.transport.dma.alloc(2048);
    const got = rx.submit([], [{ addr: buf.iova, len: 2048 }]);
    const frame = dev.transport.dma.alloc(12 + 60);
    await tx.submit([{ addr: frame.iova, len: frame.size }], []);
    t.equal((await got).len, 72, 'the looped-back frame arrived through the shared vector');
    t.ok(sim.stats.interrupts.reduce((a, b) => a + b, 0) > 0);
    await qs.close();
  });
}

t.test('a device that refuses queue vectors is polled instead', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const real = new VirtioPciTransport(sim.fn);
  const refusing = Object.assign(Object.create(real) as VirtioPciTransport, {
    configureQueue: (q: number, s: Parameters<VirtioPciTransport['configureQueue']>[1]) => {
      real.configureQueue(q, { ...s, vector: VIRTIO_MSI_NO_VECTOR });
      return VIRTIO_MSI_NO_VECTOR;
    },
  });
  const dev = await VirtioDevice.open(refusing);
  const qs = new QueueSet(dev);
  const rq = qs.add(0);
  await dev.driverOk();
  t.notOk(dev.queueHasInterrupts(0), 'no vector: the queue is polled');
  const r = dev.transport.dma.alloc(64);
  new DataView(r.bytes.buffer, r.bytes.byteOffset).setUint32(0, 4, true);
  const done = await rq.submit([{ addr: r.iova, len: 16 }], [{ addr: r.iova + 32n, len: 1 }]);
  t.equal(done.len, 1, 'and its requests still complete');
  await qs.close();
});

// The driver side (VirtioPciTransport, VirtioDevice, queues, BlkDriver) against the reference
// device, end to end: negotiation, both layouts, interrupts and polling, device faults, NEEDS_RESET.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { BLK_SECTOR_SIZE, BlkFeature, Feature, Status, hasFeature } from '../../lib/spec/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { VirtioTransport } from '../../lib/transport/types.js';
import { codeOfAsync } from '../support/codes.js';

function pattern(sector: number, sectors: number, salt = 0): Uint8Array {
  const out = new Uint8Array(sectors * BLK_SECTOR_SIZE);
  for (let i = 0; i < out.length; i++) out[i] = (sector * 131 + i * 7 + salt) & 0xff;
  return out;
}


for (const layout of ['split', 'packed'] as const) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`blk ${layout}, ${interrupts === 'auto' ? 'MSI-X' : 'polling'}: write, read back, flush, get-id; disk holds the data`, async (t) => {
      const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, serial: 'disk-7' });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts, depth: 16 });
      t.teardown(() => blk.close());
      t.equal(blk.device.layout, layout);
      t.equal(blk.device.interruptMode, interrupts === 'auto' ? 'msix' : 'poll');
      t.equal(blk.capacitySectors, 4096);
      t.ok(hasFeature(blk.device.features, Feature.VERSION_1));
      t.equal(hasFeature(blk.device.features, Feature.RING_PACKED), layout === 'packed');
      const writes = [];
      for (let i = 0; i < 200; i++) writes.push(blk.write((i * 8) % 4000, pattern((i * 8) % 4000, 8, i)));
      await Promise.all(writes);
      await blk.flush();
      for (let i = 150; i < 200; i++) {
        const sector = (i * 8) % 4000;
        const back = await blk.read(sector, 8);
        const later = [...Array(200).keys()].filter((j) => (j * 8) % 4000 === sector).pop()!;
        t.same(back, pattern(sector, 8, later), `sector ${sector} reads what was written last`);
        if (t.passing() === false) break;
      }
      t.same(sim.disk.subarray(8 * BLK_SECTOR_SIZE, 16 * BLK_SECTOR_SIZE), pattern(8, 8, 1), 'the device\'s disk holds it');
      t.equal(await blk.getId(), 'disk-7');
      t.equal(await codeOfAsync(blk.read(4095, 2)), 'E_OUT_OF_RANGE', 'beyond capacity: refused before the device');
      t.equal(await codeOfAsync(blk.write(0, new Uint8Array(100))), 'E_INVALID_ARGUMENT', 'not whole sectors');
      if (interrupts === 'auto') t.ok(sim.stats.interrupts[0]! > 0, 'interrupts were delivered');
    });
  }
}

t.test('a missing required feature fails open() with its name, and leaves FAILED set', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  try {
    await VirtioDevice.open(transport, { features: { required: [BlkFeature.WRITE_ZEROES] } });
    t.fail('should not open');
  } catch (e) {
    t.equal((e as UvirtioError).code, 'E_FEATURE_MISSING');
    t.match((e as Error).message, /WRITE_ZEROES/);
  }
  t.ok(transport.readStatus() & Status.FAILED, 'FAILED set after an irrecoverable init error');
});

t.test('a device that drops FEATURES_OK is detected on the re-read', async (t) => {
  const sim = createSimDevice({ type: 'blk', offer: { eventIdx: false } });
  const real = new VirtioPciTransport(sim.fn);
  // A transport that slips in a bit the device did not offer: the device must refuse FEATURES_OK.
  const sneaky: VirtioTransport = Object.create(real, {
    writeDriverFeatures: { value: (f: bigint) => real.writeDriverFeatures(f | (1n << BigInt(Feature.EVENT_IDX))) },
  });
  t.equal(await codeOfAsync(VirtioDevice.open(sneaky)), 'E_FEATURES_NOT_OK');
});

t.test('a malformed request given to the device makes it set NEEDS_RESET; the driver reports it', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
  const qs = new QueueSet(dev);
  const rq = qs.add(0);
  await dev.driverOk();
  let configChanges = 0;
  dev.onConfigChange(() => configChanges++);
  // A blk request whose header is 4 bytes, not 16 (in the driver's own memory: an address outside
  // it is refused at submit, E_BAD_CHAIN, and never reaches the device).
  const mem = dev.dma.alloc(4096);
  const bad = rq.submit([{ addr: mem.iova, len: 4 }], [{ addr: mem.iova + 16n, len: 1 }]);
  t.equal(await codeOfAsync(bad), 'E_DEVICE_NEEDS_RESET', 'the request is rejected with the device\'s failure');
  t.equal(dev.failure?.code, 'E_DEVICE_NEEDS_RESET', 'the device reports DEVICE_NEEDS_RESET');
  t.equal(dev.phase, 'needs-reset');
  t.ok(configChanges > 0, 'the configuration interrupt arrived');
  t.equal(await codeOfAsync(rq.submit([{ addr: mem.iova, len: 16 }], [])), 'E_DEVICE_NEEDS_RESET', 'new requests are refused until recover()');
  await qs.close();
});

for (const layout of ['split', 'packed'] as const) {
  for (const kind of ['bad-used-id', 'used-len-overflow', 'used-index-jump', 'bad-packed-flags'] as const) {
    if (kind === 'used-index-jump' && layout === 'packed') continue; // packed has no used index
    if (kind === 'bad-packed-flags' && layout === 'split') continue;
    t.test(`${layout}: a device fault "${kind}" breaks the queue with its own code and rejects pending requests`, async (t) => {
      const sim = createSimDevice({ type: 'blk', completion: 'manual' });
      const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { layout, depth: 8 });
      t.teardown(() => blk.close());
      const pending = [0, 1, 2, 3].map((i) => blk.read(i, 1));
      for (let i = 0; i < 20 && sim.held < 4; i++) await new Promise((r) => setImmediate(r));
      t.equal(sim.held, 4, 'four requests in flight');
      sim.injectFault({ kind, queue: 0 });
      sim.completeNow();
      const codes = await Promise.all(pending.map((p) => codeOfAsync(p)));
      const expected = { 'bad-used-id': 'E_DEVICE_BAD_USED_ID', 'used-len-overflow': 'E_DEVICE_BAD_USED_LEN', 'used-index-jump': 'E_DEVICE_USED_INDEX_JUMP', 'bad-packed-flags': 'E_DEVICE_BAD_PACKED_FLAGS' }[kind];
      t.ok(codes.includes(expected), `${expected} among ${codes.join(', ')}`);
      t.ok(codes.every((c) => c === expected || c === 'no error'), 'nothing else went wrong');
      t.equal(blk.device.failure?.code, expected, 'the device failed with that fault (and was reset)');
      t.equal(await codeOfAsync(blk.read(9, 1)), expected, 'later requests are refused at once');
    });
  }
}

t.test('net loopback through raw queues: each frame comes back once, with its header', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
  const qs = new QueueSet(dev);
  const rx = qs.add(0, { drains: false });
  const tx = qs.add(1);
  await dev.driverOk();
  t.teardown(async () => {
    await qs.close();
  });
  const dma = dev.transport.dma;
  const bufs = Array.from({ length: 8 }, () => dma.alloc(2048));
  const received = bufs.map((b) => rx.submit([], [{ addr: b.iova, len: 2048 }]));
  const frames = [];
  for (let i = 0; i < 8; i++) {
    const f = dma.alloc(12 + 64);
    f.bytes.fill(i, 12);
    frames.push(tx.submit([{ addr: f.iova, len: f.size }], []));
  }
  await Promise.all(frames);
  const done = await Promise.all(received);
  t.same(done.map((d) => d.len), Array(8).fill(76), 'each rx buffer got a 12-byte header and 64 bytes');
  const payloads = bufs.map((b) => b.bytes[12]).sort();
  t.same(payloads, [0, 1, 2, 3, 4, 5, 6, 7], 'every frame arrived exactly once');
});

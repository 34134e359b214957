// Fault injection (the device misbehaving on purpose) and driver errors (the device refusing a
// broken ring with DEVICE_NEEDS_RESET, never crashing).
import t from 'tap';
import { PciCommand, PciConfig } from '../../lib/pci/config.js';
import { createSimDevice, type RuleId } from '../../lib/sim/index.js';
import { BlkReq, BlkStatus, CommonCfg, DescFlag, Feature, PackedFlag, Status, bit } from '../../lib/spec/index.js';
import { PackedRing, SimDriver, SplitRing, blkRequest, ruleIds, settle } from '../support/sim-driver.js';

function bringUp(packed = false, extra = 0n) {
  const sim = createSimDevice({ type: 'blk', queues: 2, capacitySectors: 64 });
  const d = new SimDriver(sim);
  d.start((packed ? bit(Feature.RING_PACKED) : 0n) | extra);
  d.setConfigVector(2);
  const ring = packed ? new PackedRing(d, 8) : new SplitRing(d, 8);
  d.setupQueue(0, ring);
  d.driverOk();
  return { sim, d, ring };
}

async function flush(d: SimDriver, ring: SplitRing | PackedRing) {
  const r = blkRequest(d, BlkReq.FLUSH, 0n);
  ring.add(r.segs);
  d.notify(0);
  await settle();
  return r;
}

t.test('split faults show up in ring memory', async (t) => {
  const { sim, d, ring } = bringUp();
  const split = ring as SplitRing;
  sim.injectFault({ kind: 'bad-used-id' });
  await flush(d, ring);
  t.same(split.usedAt(0), { id: 8, len: 1 }, 'bad-used-id: id = queue size');
  sim.injectFault({ kind: 'used-len-overflow' });
  await flush(d, ring);
  t.same(split.usedAt(1), { id: 2, len: 2 }, 'used-len-overflow: writable bytes + 1');
  sim.injectFault({ kind: 'used-index-jump' });
  await flush(d, ring);
  t.equal(split.usedIdx, 4, 'used-index-jump: idx advanced by 2 for one element');
  sim.injectFault({ kind: 'bad-packed-flags' });
  await flush(d, ring);
  t.equal(split.usedIdx, 5, 'a packed-only fault does not apply to a split ring');
  t.same(split.usedAt(4), { id: 6, len: 1 });
  t.equal(d.status & Status.DEVICE_NEEDS_RESET, 0, 'misbehaving is not a device error');
});

t.test('packed faults show up in ring memory', async (t) => {
  const { sim, d, ring } = bringUp(true);
  const packed = ring as PackedRing;
  sim.injectFault({ kind: 'bad-packed-flags' });
  await flush(d, ring);
  const flags = packed.flagsAt(0);
  t.equal(flags & PackedFlag.USED, PackedFlag.USED, 'USED = the device wrap counter: it looks used');
  t.equal(flags & PackedFlag.AVAIL, 0, 'AVAIL != USED');
  sim.injectFault({ kind: 'bad-used-id' });
  await flush(d, ring);
  t.equal(packed.descs.getUint16(2 * 16 + 12, true), 8, 'bad-used-id: id = queue size');
  t.equal(packed.flagsAt(2) & (PackedFlag.AVAIL | PackedFlag.USED), PackedFlag.AVAIL | PackedFlag.USED);
  sim.injectFault({ kind: 'used-len-overflow' });
  await flush(d, ring);
  t.equal(packed.descs.getUint32(4 * 16 + 8, true), 2, 'used-len-overflow: writable bytes + 1');
  sim.injectFault({ kind: 'used-index-jump' });
  await flush(d, ring);
  t.equal(packed.descs.getUint32(6 * 16 + 8, true), 1, 'a split-only fault does not apply to a packed ring');
  t.equal(packed.descs.getUint16(6 * 16 + 12, true), 3);
});

t.test('a fault aimed at one queue waits for that queue', async (t) => {
  const { sim, d, ring } = bringUp();
  sim.injectFault({ kind: 'bad-used-id', queue: 1 });
  await flush(d, ring);
  t.same((ring as SplitRing).usedAt(0), { id: 0, len: 1 });
});

t.test('a descriptor outside driver memory: DEVICE_NEEDS_RESET and a config interrupt, no crash', async (t) => {
  const { sim, d, ring } = bringUp();
  const status = d.alloc(1);
  ring.add([{ addr: 0xdead_0000n, len: 16 }, { addr: status.iova, len: 1, write: true }]);
  d.notify(0);
  await settle();
  t.equal(d.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
  t.equal(sim.failure && 'code' in sim.failure ? sim.failure.code : undefined, 'E_BAD_ADDRESS');
  t.same(ruleIds(sim), ['buffer-address-invalid'], 'recorded');
  t.same(d.vectors, [2], 'config interrupt on the config vector');
  t.equal((ring as SplitRing).usedIdx, 0, 'nothing used');
  await flush(d, ring);
  t.equal((ring as SplitRing).usedIdx, 0, 'a device that needs reset does nothing');
  d.reset();
  t.equal(d.status, 0);
  t.equal(sim.failure, undefined);
  d.start();
  const fresh = new SplitRing(d, 8);
  d.setupQueue(0, fresh);
  d.driverOk();
  const r = await flush(d, fresh);
  t.equal(r.status.bytes[0], BlkStatus.OK, 'works again after reset');
});

const buf = (d: SimDriver) => ({ addr: d.alloc(64).iova, len: 64 });

/** Split-ring driver errors: each builds raw descriptors and must end in DEVICE_NEEDS_RESET. */
const driverErrors: { name: string; rule: RuleId; features?: bigint; build: (d: SimDriver, ring: SplitRing) => void; why: RegExp }[] = [
  {
    name: 'a looping chain', rule: 'chain-loop', why: /longer than its table/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, buf(d), DescFlag.NEXT, 1);
      ring.writeDesc(ring.descs, 1, buf(d), DescFlag.NEXT, 0);
      ring.publish(0);
    },
  },
  {
    name: 'next beyond the ring', rule: 'desc-next-out-of-range', why: /beyond its table/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, buf(d), DescFlag.NEXT, 8);
      ring.publish(0);
    },
  },
  { name: 'a head beyond the ring', rule: 'avail-head-out-of-range', why: /head 9/, build: (_d, ring) => ring.publish(9) },
  {
    name: 'avail idx moved by more than the ring size', rule: 'avail-idx-too-far', why: /more than the 8 entries/,
    build: (_d, ring) => ring.avail.setUint16(2, 20, true),
  },
  {
    name: 'readable after writable', rule: 'readable-after-writable', why: /readable descriptor after a device-writable/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, { ...buf(d), write: true }, DescFlag.NEXT, 1);
      ring.writeDesc(ring.descs, 1, buf(d), 0, 0);
      ring.publish(0);
    },
  },
  {
    name: 'INDIRECT without the feature', rule: 'indirect-not-negotiated', why: /not negotiated/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, buf(d), DescFlag.INDIRECT, 0);
      ring.publish(0);
    },
  },
  {
    name: 'INDIRECT with NEXT', rule: 'indirect-with-next', features: bit(Feature.INDIRECT_DESC), why: /INDIRECT together with NEXT/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, buf(d), DescFlag.INDIRECT | DescFlag.NEXT, 1);
      ring.publish(0);
    },
  },
  {
    name: 'nested indirect', rule: 'indirect-nested', features: bit(Feature.INDIRECT_DESC), why: /nests/,
    build: (d, ring) => {
      const table = d.alloc(16);
      ring.writeDesc(new DataView(table.bytes.buffer), 0, buf(d), DescFlag.INDIRECT, 0);
      ring.writeDesc(ring.descs, 0, { addr: table.iova, len: 16 }, DescFlag.INDIRECT, 0);
      ring.publish(0);
    },
  },
  {
    name: 'a zero-length buffer', rule: 'zero-length-descriptor', why: /length 0/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, { addr: d.alloc(8).iova, len: 0 }, 0, 0);
      ring.publish(0);
    },
  },
  {
    name: 'a blk request without a status byte', rule: 'blk-request-malformed', why: /status byte/,
    build: (d, ring) => {
      ring.writeDesc(ring.descs, 0, buf(d), 0, 0);
      ring.publish(0);
    },
  },
];

for (const c of driverErrors) {
  t.test(`driver error: ${c.name}`, async (t) => {
    const { sim, d, ring } = bringUp(false, c.features ?? 0n);
    c.build(d, ring as SplitRing);
    d.notify(0);
    await settle();
    t.equal(d.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
    t.match(sim.failure?.message, c.why);
    t.same(ruleIds(sim), [c.rule], `recorded as ${c.rule}`);
  });
}

t.test('a packed list longer than the ring', async (t) => {
  const { sim, d, ring } = bringUp(true);
  const packed = ring as PackedRing;
  for (let slot = 7; slot >= 0; slot--) {
    const at = slot * 16;
    packed.descs.setBigUint64(at, d.alloc(64).iova, true);
    packed.descs.setUint32(at + 8, 64, true);
    packed.descs.setUint16(at + 14, PackedFlag.NEXT | PackedFlag.AVAIL, true);
  }
  d.notify(0);
  await settle();
  t.equal(d.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
  t.match(sim.failure?.message, /longer than the ring/);
  t.same(ruleIds(sim), ['chain-loop'], 'recorded');
});

t.test('ring memory the driver does not own fails at queue_enable', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const d = new SimDriver(sim);
  d.start();
  d.selectQueue(0);
  d.write64(CommonCfg.QUEUE_DESC, 0x10n);
  d.w16(CommonCfg.QUEUE_ENABLE, 1);
  t.equal(d.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
  t.equal(d.r16(CommonCfg.QUEUE_ENABLE), 0);
  t.same(d.vectors, [], 'no config interrupt before DRIVER_OK');
  t.same(ruleIds(sim), ['ring-address-invalid'], 'recorded');
});

t.test('DMA without Bus Master Enable is refused', async (t) => {
  const { sim, d, ring } = bringUp();
  sim.fn.configWrite16(PciConfig.COMMAND, d.commandRegister & ~PciCommand.BUS_MASTER);
  await flush(d, ring);
  t.equal(d.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
  t.match(sim.failure?.message, /Bus Master/);
  t.same(ruleIds(sim), ['bus-master-disabled'], 'recorded');
});

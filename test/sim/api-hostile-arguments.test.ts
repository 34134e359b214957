// Every public call that takes a number, a bigint IOVA, a byte array, an options object or a list,
// given something else: a prototype-less object, objects whose toString or Symbol.toPrimitive
// throws, a symbol, a bigint where a number is wanted, a numeric string, NaN, null, undefined, an
// array. The call must refuse it with a UvirtioError (a stable code), synchronously or as a
// rejection, within 2 s; never a TypeError from our own message or field access. A Proxy whose
// every property read throws may instead surface the caller's own error (that object, unchanged).
// Found by probing the API after the closed-transport fix (fixed: template literals turned a
// symbol or a prototype-less object into a TypeError, and batch calls read fields of null).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { openTransport } from '../../lib/open.js';
import { parseAddress } from '../../lib/address.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { parseSnapshot } from '../../lib/virtio/snapshot/index.js';
import { OBJECT_LIKE, refusesAll } from '../support/hostile.js';


t.test('BlkDriver calls', async (t) => {
  const opened = await openTransport('sim:blk?discard=1&writezeroes=1');
  const blk = await BlkDriver.open(opened.transport);
  t.teardown(() => blk.close());
  const region = blk.device.dma.alloc(4096);
  await refusesAll(t, 'read(sector)', (v) => blk.read(v, 1));
  await refusesAll(t, 'read(…, count)', (v) => blk.read(0, v));
  await refusesAll(t, 'write(sector)', (v) => blk.write(v, new Uint8Array(512)));
  await refusesAll(t, 'write(…, data)', (v) => blk.write(0, v));
  await refusesAll(t, 'readDma(sector)', (v) => blk.readDma(v, 1, region));
  await refusesAll(t, 'readDma(…, target)', (v) => blk.readDma(0, 1, v));
  await refusesAll(t, 'readDma(…, offset)', (v) => blk.readDma(0, 1, region, v), ['undefined']);
  const into = new Uint8Array(4096);
  await refusesAll(t, 'readInto(sector)', (v) => blk.readInto(v, 1, into));
  await refusesAll(t, 'readInto(…, count)', (v) => blk.readInto(0, v, into));
  await refusesAll(t, 'readInto(…, target)', (v) => blk.readInto(0, 1, v));
  await refusesAll(t, 'readInto(…, offset)', (v) => blk.readInto(0, 1, into, v), ['undefined']);
  await refusesAll(t, 'readMany(ranges)', (v) => blk.readMany(v), ['an array']); // an empty batch reads nothing
  await refusesAll(t, 'readMany([range])', (v) => blk.readMany([v]));
  await refusesAll(t, 'readMany([{ sector }])', (v) => blk.readMany([{ sector: v, sectors: 1 }]));
  await refusesAll(t, 'writeMany(writes)', (v) => blk.writeMany(v), ['an array']);
  await refusesAll(t, 'writeMany([{ data }])', (v) => blk.writeMany([{ sector: 0, data: v }]));
  await refusesAll(t, 'discard([range])', (v) => blk.discard([v]));
  await refusesAll(t, 'writeZeroes([{ sectors }])', (v) => blk.writeZeroes([{ sector: 0, sectors: v }]));
  await refusesAll(t, 'requestQueue(q)', (v) => blk.requestQueue(v));
  await refusesAll(t, 'device.config.read8(offset)', (v) => blk.device.config.read8(v));
  await refusesAll(t, 'device.config.readBytes(…, length)', (v) => blk.device.config.readBytes(0, v));
  await refusesAll(t, 'device.dma.alloc(size)', (v) => blk.device.dma.alloc(v));
  await refusesAll(t, 'device.dma.alloc(…, align)', (v) => blk.device.dma.alloc(64, v), ['undefined']);
  await refusesAll(t, 'device.dma.view(iova)', (v) => (blk.device.dma as HeapDmaAllocator).view(v, 1));
  await refusesAll(t, 'device.dma.view(…, len)', (v) => (blk.device.dma as HeapDmaAllocator).view(region.iova, v));
  t.equal(blk.device.dma.lookup(Symbol('x') as never, 1), undefined, 'lookup of something that is not an IOVA finds nothing');
  t.same([...(await blk.read(0, 1))].length, 512, 'the driver still reads after all of it');
});

t.test('NetDriver, RngDriver and ConsoleDriver calls', async (t) => {
  const n = await openTransport('sim:net?pairs=2');
  const net = await NetDriver.open(n.transport);
  t.teardown(() => net.close());
  await refusesAll(t, 'net.send(frame)', (v) => net.send(v));
  await refusesAll(t, 'net.send(…, header)', (v) => net.send(new Uint8Array(60), v),
    OBJECT_LIKE); // objects without NetHeader fields: no offloads
  await refusesAll(t, 'net.send(…, pair)', (v) => net.send(new Uint8Array(60), {}, v), ['undefined', 'null']); // the pairs in turn
  await refusesAll(t, 'net.setQueuePairs(pairs)', (v) => net.setQueuePairs(v));
  const r = await openTransport('sim:rng');
  const rng = await RngDriver.open(r.transport);
  t.teardown(() => rng.close());
  await refusesAll(t, 'rng.read(n)', (v) => rng.read(v));
  const c = await openTransport('sim:console');
  const con = await ConsoleDriver.open(c.transport);
  t.teardown(() => con.close());
  await refusesAll(t, 'console.waitForPort(which)', (v) => con.waitForPort(v, 50), ['a numeric string']);
  await refusesAll(t, 'console.waitForPort(…, timeoutMs)', (v) => con.waitForPort(0, v), ['undefined']);
  await refusesAll(t, 'console.emergencyWrite(bytes)', (v) => con.emergencyWrite(v), ['a numeric string']);
});

t.test('entry points: addresses, transports, allocators, snapshots', async (t) => {
  await refusesAll(t, 'parseAddress(text)', (v) => parseAddress(v));
  await refusesAll(t, 'openTransport(address)', (v) => openTransport(v));
  await refusesAll(t, 'openTransport(…, options)', async (v) => (await openTransport('sim:rng', v)).transport.close(), OBJECT_LIKE);
  await refusesAll(t, 'new HeapDmaAllocator(options)', (v) => new HeapDmaAllocator(v), OBJECT_LIKE);
  await refusesAll(t, 'new HeapDmaAllocator({ limit })', (v) => new HeapDmaAllocator({ limit: v }), ['undefined']);
  await refusesAll(t, 'parseSnapshot(text)', (v) => parseSnapshot(v));
});

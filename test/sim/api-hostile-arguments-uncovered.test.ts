// Public calls (exported from index.ts, lib/index.ts, lib/sim/index.ts) api-hostile-arguments.test.ts does not cover, given the same hostile values (null, a
// symbol, a prototype-less object, a throwing toString, …): each must refuse them with a
// UvirtioError (or surface the caller's own Proxy error), within 2 s; never a TypeError from the
// SDK's own code. Found by a breaker after 9acbde1 (each subtest lists the calls that still fail).

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver, decodeNetHeader, encodeNetHeader } from '../../drivers/net/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { readSnapshotFile, writeSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { rehearse } from '../../cli/rehearsal/engine.js';
import { OBJECT_LIKE, refusesAll } from '../support/hostile.js';


t.test('device and driver open / stop / reinit options', async (t) => {
  await refusesAll(t, 'VirtioDevice.open(…, options)', async (v) => {
    const o = await openTransport('sim:rng');
    try { await (await VirtioDevice.open(o.transport, v)).close(); } finally { o.transport.close(); }
  }, OBJECT_LIKE);
  for (const [name, open, addr] of [
    ['BlkDriver', BlkDriver.open, 'sim:blk'], ['NetDriver', NetDriver.open, 'sim:net'],
    ['RngDriver', RngDriver.open, 'sim:rng'], ['ConsoleDriver', ConsoleDriver.open, 'sim:console'],
  ] as const) {
    await refusesAll(t, `${name}.open(…, options)`, async (v) => {
      const o = await openTransport(addr);
      try { await (await (open as (tr: unknown, o: unknown) => Promise<{ close(): Promise<void> }>)(o.transport, v)).close(); } finally { o.transport.close(); }
    }, name === 'RngDriver' ? [...OBJECT_LIKE, 'a Proxy that throws on every read'] : OBJECT_LIKE); // rng reads no option
  }
  const o = await openTransport('sim:blk?state=suspend');
  const blk = await BlkDriver.open(o.transport);
  t.teardown(() => blk.close());
  await refusesAll(t, 'blk.stop(options)', async (v) => { await blk.stop(v); await blk.resume().catch(() => undefined); }, OBJECT_LIKE);
  await refusesAll(t, 'blk.stop({ mechanism })', async (v) => { await blk.stop({ mechanism: v }); await blk.resume(); }, ['undefined']);
  await refusesAll(t, 'blk.stop({ timeoutMs })', async (v) => { await blk.stop({ timeoutMs: v }); await blk.resume(); }, ['undefined']);
  t.equal(blk.device.phase, 'live', 'nothing stopped the device');
  t.same((await blk.read(0, 1)).length, 512, 'the driver still reads');
});

t.test('reinit options and target, VirtioDevice.stop prepare', async (t) => {
  const o = await openTransport('sim:blk?state=suspend');
  const blk = await BlkDriver.open(o.transport);
  t.teardown(() => blk.close());
  await blk.stop();
  const snap = blk.snapshot();
  // Each call is made on the stopped device; one that reinitialises it is stopped again for the next.
  const onStopped = (call: () => Promise<unknown>) => async (): Promise<unknown> => {
    if (blk.device.phase !== 'stopped') await blk.stop();
    return call();
  };
  await refusesAll(t, 'blk.reinit(…, options)', (v) => onStopped(() => blk.reinit(snap, v))(), OBJECT_LIKE);
  await refusesAll(t, 'blk.reinit(…, { target })', (v) => onStopped(() => blk.reinit(snap, { target: v }))(), ['undefined']);
  if (blk.device.phase === 'stopped') await blk.reinit(snap);
  await refusesAll(t, 'device.stop(…, prepare)', async (v) => {
    await blk.device.stop({}, v);
    await blk.device.resume();
  }, ['undefined']);
  t.equal(blk.device.phase, 'live', 'the device is live after all of it');
  t.same((await blk.read(0, 1)).length, 512, 'the driver still reads');
});

t.test('QueueSet.add(index, options)', async (t) => {
  // A fresh device per value: add() is called before DRIVER_OK.
  const onFresh = async (call: (qs: QueueSet) => unknown): Promise<void> => {
    const o = await openTransport('sim:blk');
    const dev = await VirtioDevice.open(o.transport);
    try { await call(new QueueSet(dev)); } finally { await dev.close(); }
  };
  await refusesAll(t, 'QueueSet.add(index)', (v) => onFresh((qs) => qs.add(v)));
  await refusesAll(t, 'QueueSet.add(…, { size })', (v) => onFresh((qs) => qs.add(0, { size: v } as never)), ['undefined']);
});

t.test('config writes, listeners, net headers, console port writes', async (t) => {
  const n = await openTransport('sim:net');
  const net = await NetDriver.open(n.transport);
  t.teardown(() => net.close());
  await refusesAll(t, 'device.config.write8(offset)', (v) => net.device.config.write8(v, 0));
  await refusesAll(t, 'device.config.write8(…, value)', (v) => net.device.config.write8(0, v));
  await refusesAll(t, 'device.config.write32(…, value)', (v) => net.device.config.write32(0, v));
  await refusesAll(t, 'net.onFrame(listener)', (v) => net.onFrame(v));
  await refusesAll(t, 'decodeNetHeader(bytes)', (v) => decodeNetHeader(v));
  await refusesAll(t, 'encodeNetHeader(header, …)', (v) => encodeNetHeader(v, new Uint8Array(12)), OBJECT_LIKE);
  await refusesAll(t, 'encodeNetHeader(…, into)', (v) => encodeNetHeader({}, v));
  const c = await openTransport('sim:console');
  const con = await ConsoleDriver.open(c.transport);
  t.teardown(() => con.close());
  await refusesAll(t, 'console.onPort(listener)', (v) => con.onPort(v));
});

t.test('sim devices, snapshot files', async (t) => {
  await refusesAll(t, 'createSimDevice(options)', (v) => createSimDevice(v));
  await refusesAll(t, 'createSimDevice({ type })', (v) => createSimDevice({ type: v } as never));
  const sim = createSimDevice({ type: 'blk' });
  await refusesAll(t, 'sim.injectFault(fault)', (v) => sim.injectFault(v));
  await refusesAll(t, 'sim.injectFault({ kind })', (v) => sim.injectFault({ kind: v } as never));
  const dir = mkdtempSync(join(tmpdir(), 'brk25b-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cwd = process.cwd();
  process.chdir(dir); // '5' is a path: written into the temp directory, not the repository
  t.teardown(() => process.chdir(cwd));
  await refusesAll(t, 'writeSnapshotFile(path)', (v) => writeSnapshotFile(v, {} as never), ['a numeric string']);
  await refusesAll(t, 'writeSnapshotFile(…, snap)', (v) => writeSnapshotFile(join(dir, 's.json'), v));
  await refusesAll(t, 'readSnapshotFile(path)', (v) => readSnapshotFile(v));
  await refusesAll(t, 'rehearse(options)', (v) => rehearse(v));
  await refusesAll(t, 'readSnapshotFile(…, maxBytes)', (v) => readSnapshotFile(join(dir, 'none.json'), v), ['undefined']);
});

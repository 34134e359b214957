// A closed transport is refused with E_CLOSED wherever the SDK would start a device on it. Found by
// a breaker (fixed: a driver's close() closes its transport; opening a driver again on that same
// transport read the closed registers as zeros and failed with E_FEATURE_MISSING "legacy-only
// device", and a reinit() onto a closed target would have blamed the snapshot). The check lives in
// the one place every start goes through (lib/virtio/device-core.ts checkTransportOpen: open,
// reinit's target, §3.1.1 initialisation), so it holds for every driver and transport.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { UvirtioError } from '../../lib/errors.js';

async function refusal(p: Promise<unknown>): Promise<UvirtioError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof UvirtioError) return e;
    throw e;
  }
  throw new Error('expected a refusal, got success');
}

const pattern = (sector: number): Uint8Array => {
  const b = new Uint8Array(512);
  for (let i = 0; i < b.length; i++) b[i] = (sector * 31 + i) & 0xff;
  return b;
};

t.test('a driver opened again on the transport its close() closed: E_CLOSED naming the transport, not E_FEATURE_MISSING', async (t) => {
  for (const address of ['sim:blk', 'sim:console']) {
    const opened = await openTransport(address);
    const first = address === 'sim:blk' ? await BlkDriver.open(opened.transport) : await ConsoleDriver.open(opened.transport);
    await first.close();
    t.equal(opened.transport.closed, true, `${address}: the driver's close() closed its transport`);
    const e = await refusal(address === 'sim:blk' ? BlkDriver.open(opened.transport) : ConsoleDriver.open(opened.transport));
    t.equal(e.code, 'E_CLOSED', `${address}: ${e.message}`);
    t.match(e.message, address, 'the message names the transport');
    t.match(e.message, /closed/, 'and says it was closed');
    t.match(e.hint ?? '', /openTransport/, 'the hint says how to get a fresh one');
    // A fresh transport for the same address works.
    const again = await openTransport(address);
    const second = address === 'sim:blk' ? await BlkDriver.open(again.transport) : await ConsoleDriver.open(again.transport);
    t.equal(second.device.phase, 'live', `${address}: a new transport opens`);
    await second.close();
  }
});

t.test('VirtioDevice.open on a transport closed by its owner: E_CLOSED before any register is touched', async (t) => {
  const opened = await openTransport('sim:rng');
  opened.transport.close();
  const e = await refusal(VirtioDevice.open(opened.transport));
  t.equal(e.code, 'E_CLOSED', e.message);
  t.equal(opened.sim!.violations.length, 0, 'the reference device saw no access to a closed function');
});

t.test('reinit() onto a closed target: E_CLOSED, the device stays stopped, and a reinit onto a live device loses nothing', async (t) => {
  const src = await openTransport('sim:blk?latency=5');
  const dst = await openTransport('sim:blk?latency=5', { shareWith: src });
  const dead = await openTransport('sim:blk', { shareWith: src });
  const blk = await BlkDriver.open(src.transport, { requestTimeoutMs: 5000 });
  t.teardown(() => blk.close());
  await blk.write(3, pattern(3));
  const reads = [blk.read(3, 1), blk.read(3, 1), blk.read(3, 1)];
  await blk.stop();
  const snap = blk.snapshot();
  dead.transport.close();
  const e = await refusal(blk.reinit(snap, { target: dead.transport }));
  t.equal(e.code, 'E_CLOSED', e.message);
  t.match(e.message, /reinit/, 'the message says which operation needed it');
  t.equal(blk.device.phase, 'stopped', 'the device is still stopped, with its snapshot good');
  await blk.reinit(snap, { target: dst.transport });
  t.equal(blk.device.phase, 'live');
  const got = await Promise.all(reads);
  for (const g of got) t.same([...g], [...pattern(3)], 'each read in flight at the stop completes with the data');
  t.same([...src.sim!.violations, ...dst.sim!.violations].map((v) => v.id), [], 'no spec violation on either device');
});

// A second driver opened on a transport that already has a live one — BlkDriver.open(t) twice,
// two opens at once, or VirtioDevice.open(t) of your own beside a driver on the same t: a careless
// caller's mistake. Today nothing refuses it: the second open resets the device and brings it up
// again under the first driver, whose request in flight is stranded (the device forgot its chain)
// until its watchdog reports E_DEVICE_UNRESPONSIVE — the caller's mistake blamed on the device —
// and the first driver's recovery then resets the device under the second, whose read is stranded
// in turn; the first driver also notifies a device that is not DRIVER_OK (the strict device
// records notify-before-driver-ok). What should happen: an open on a transport another open
// VirtioDevice still drives is refused at once with a caller's code (E_BAD_STATE, or
// E_DEVICE_IN_USE as for a device another process holds), and the first driver and its request
// are left alone. The same one level down: a second QueueSet on a VirtioDevice that has one is
// accepted; when the device fails, only the first QueueSet handles it — the second one's request
// is stranded and, after the first one's recover(), the second refuses every request with
// E_DEVICE_NEEDS_RESET for ever. Either refuse the second QueueSet, or make both settle and revive.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { codeOf } from '../support/codes.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

const REFUSED = ['E_BAD_STATE', 'E_DEVICE_IN_USE', 'E_INVALID_ARGUMENT'];

t.test('BlkDriver.open on a transport a live BlkDriver drives: refused; the first driver\'s read completes', async (t) => {
  const opened = await openTransport('sim:blk?mode=hold&latency=5');
  const first = await BlkDriver.open(opened.transport, { requestTimeoutMs: 500 });
  t.teardown(() => first.close());
  const pending = settledCode(first.read(0, 8), 3000);
  let second: BlkDriver | undefined;
  const code = await codeOfAsync(async () => { second = await BlkDriver.open(opened.transport); });
  t.teardown(() => second?.close());
  t.ok(REFUSED.includes(code), `the second open is refused with a caller's code (got ${code})`);
  t.equal(await pending, 'ok', 'the first driver\'s read in flight completes');
  t.same(opened.sim!.violations.map((v) => v.id), [], 'no device rule broken');
});

t.test('VirtioDevice.open (your own driver) beside a live BlkDriver on the same transport: refused', async (t) => {
  const opened = await openTransport('sim:blk?mode=hold&latency=5');
  const first = await BlkDriver.open(opened.transport, { requestTimeoutMs: 500 });
  t.teardown(() => first.close());
  const pending = settledCode(first.read(0, 8), 3000);
  let dev: VirtioDevice | undefined;
  const code = await codeOfAsync(async () => { dev = await VirtioDevice.open(opened.transport, {}); });
  t.teardown(() => dev?.close());
  t.ok(REFUSED.includes(code), `refused with a caller's code (got ${code})`);
  t.equal(await pending, 'ok', 'the driver\'s read in flight completes');
});

t.test('two BlkDriver.open at once on one transport: one of them is refused', async (t) => {
  const opened = await openTransport('sim:blk');
  const results = await Promise.allSettled([BlkDriver.open(opened.transport), BlkDriver.open(opened.transport)]);
  t.teardown(async () => { for (const r of results) if (r.status === 'fulfilled') await r.value.close(); });
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one driver owns the device');
});

t.test('a second QueueSet on one VirtioDevice: refused, or both settle through a failure and recover', async (t) => {
  const opened = await openTransport('sim:blk?queues=2&mode=hold&latency=5');
  const dev = await VirtioDevice.open(opened.transport, { requestTimeoutMs: 10_000 });
  const a = new QueueSet(dev);
  t.teardown(() => a.close());
  let b: QueueSet | undefined;
  const code = codeOf(() => { b = new QueueSet(dev); });
  if (code !== 'no error') {
    t.ok(REFUSED.includes(code), `the second QueueSet is refused with a caller's code (got ${code})`);
    return;
  }
  t.teardown(() => b!.close());
  const qa = a.add<undefined>(0);
  const qb = b!.add<undefined>(1);
  await dev.driverOk();
  const read = (rq: typeof qa): Promise<string> => {
    const x = dev.dma.alloc(1024);
    new DataView(x.bytes.buffer, x.bytes.byteOffset).setUint32(0, 0 /* IN */, true);
    return settledCode(rq.submit([{ addr: x.iova, len: 16 }], [{ addr: x.iova + 16n, len: 512 }, { addr: x.iova + 528n, len: 1 }]), 3000);
  };
  const pa = read(qa);
  const pb = read(qb);
  opened.sim!.injectFault({ kind: 'needs-reset' });
  t.equal(await pa, 'E_DEVICE_NEEDS_RESET', 'the first QueueSet\'s request is rejected with the failure');
  t.equal(await pb, 'E_DEVICE_NEEDS_RESET', 'so is the second\'s, not stranded');
  opened.sim!.clearFaults();
  await a.recover();
  t.equal(await read(qa), 'ok', 'the first QueueSet works after recover()');
  t.equal(await read(qb), 'ok', 'and so does the second');
});

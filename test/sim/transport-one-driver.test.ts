// A transport has one driver at a time (lib/virtio/transport-owner.ts), beyond the opens that
// second-driver-on-open-transport covers: a reinit onto a transport another driver drives is
// refused E_DEVICE_IN_USE and leaves both drivers as they were (the first stopped, ready for
// another attempt); a reinit that moved a driver onto a target lets go of the source, which
// another driver may then open; a device closed lets go of its transport; a failed open lets go.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { UvirtioError } from '../../lib/errors.js';
import { codeOfAsync, settledCode } from '../support/codes.js';

t.test('reinit onto a transport another driver drives: refused E_DEVICE_IN_USE; both drivers go on', async (t) => {
  const src = await openTransport('sim:blk?latency=1');
  const dst = await openTransport('sim:blk?latency=1', { shareWith: src });
  const a = await BlkDriver.open(src.transport);
  t.teardown(() => a.close());
  const b = await BlkDriver.open(dst.transport);
  t.teardown(() => b.close());
  await a.write(0, new Uint8Array(512).fill(7));
  await a.stop();
  const snap = a.snapshot();
  let refusal: unknown;
  await a.reinit(snap, { target: dst.transport }).catch((e: unknown) => (refusal = e));
  t.ok(refusal instanceof UvirtioError && refusal.code === 'E_DEVICE_IN_USE' && Boolean(refusal.hint), `refused E_DEVICE_IN_USE with a hint (got ${String(refusal)})`);
  t.equal(a.device.phase, 'stopped', 'the first driver is still stopped, for another attempt');
  t.equal(await settledCode(b.read(0, 1), 3000), 'ok', 'the driver on the target was left alone');
  t.equal(await settledCode(a.reinit(snap), 3000), 'ok', 'the snapshot reinitialises the source');
  t.same([...(await a.read(0, 1)).slice(0, 4)], [7, 7, 7, 7], 'and the first driver works');
  t.same([...src.sim!.violations, ...dst.sim!.violations].map((v) => v.id), [], 'no device rule broken');
});

t.test('a reinit onto a target lets go of the source: another driver may open it; the target is held', async (t) => {
  const src = await openTransport('sim:blk?latency=1');
  const dst = await openTransport('sim:blk?latency=1', { shareWith: src });
  const a = await BlkDriver.open(src.transport);
  t.teardown(() => a.close());
  await a.stop();
  await a.reinit(a.snapshot(), { target: dst.transport });
  t.equal(await codeOfAsync(VirtioDevice.open(dst.transport)), 'E_DEVICE_IN_USE', 'the target is the driver\'s now');
  let again: BlkDriver | undefined;
  t.equal(await codeOfAsync(async () => { again = await BlkDriver.open(src.transport); }), 'no error', 'the source is free');
  t.teardown(() => again?.close());
  t.equal(await settledCode(a.read(0, 1), 3000), 'ok', 'the moved driver works on the target');
  t.equal(await settledCode(again!.read(0, 1), 3000), 'ok', 'and the new one on the source');
});

t.test('a refused open and a closed device let go of the transport', async (t) => {
  const opened = await openTransport('sim:blk');
  t.equal(await codeOfAsync(VirtioDevice.open(opened.transport, { features: { required: [63] } })), 'E_FEATURE_MISSING', 'an open that fails');
  const dev = await VirtioDevice.open(opened.transport);
  t.equal(await codeOfAsync(VirtioDevice.open(opened.transport)), 'E_DEVICE_IN_USE', 'held while open');
  await dev.reset();
  const dev2 = await VirtioDevice.open(opened.transport);
  t.equal(dev2.phase, 'features-ok', 'reset() let go: the device opens again on the transport');
  await dev.close(); // the reset device's close leaves the transport to its new owner
  t.equal(opened.transport.closed, false, 'the old device\'s close did not close the new owner\'s transport');
  await dev2.close();
  t.equal(await codeOfAsync(VirtioDevice.open(opened.transport)), 'E_CLOSED', 'after close: the transport is closed (not in use)');
});

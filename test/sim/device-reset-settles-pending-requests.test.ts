// VirtioDevice.reset() lets go of the device and returns the tokens of the chains still in flight
// ("so their owners can reject them"), but the owner of those chains — a driver's QueueSet — never
// heard of it: a blk read in flight, or waiting for room on the ring, when the device was reset
// never settled, not even after the driver's close() (the device had forgotten its queues, so
// close() found nothing to reject). What should happen: like close(), reset() tells the QueueSet,
// which rejects every pending request with E_CLOSED (the device was reset under it) and refuses
// later ones; reset() still returns the orphan tokens.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { settledCode } from '../support/codes.js';
import { heldRequest } from '../support/held-request.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('blk: a read in flight when the device is reset() rejects E_CLOSED', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => blk.close());
  const read = settledCode(blk.read(0, 8), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.equal(sim.held, 1, 'the read is on the device');
  const orphans = await blk.device.reset();
  t.equal(orphans.length, 1, 'reset() returns the orphan token');
  t.equal(await read, 'E_CLOSED', 'the read settles with E_CLOSED');
  t.equal(await settledCode(blk.read(0, 8), 3000), 'E_CLOSED', 'a later read is refused E_CLOSED');
  t.equal(await settledCode(blk.close(), 3000), 'ok', 'close() afterwards settles');
});

t.test('blk: reads waiting for room on the ring when the device is reset() reject, also with close() after', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { queueSize: 4, depth: 8, indirect: false });
  const reads = Array.from({ length: 6 }, (_, i) => settledCode(blk.read(i * 8, 8), 3000));
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.ok(blk.requests.pending > blk.requests.vq.inFlight, 'some reads wait for room on the ring');
  await blk.device.reset();
  t.equal(await settledCode(blk.close(), 3000), 'ok', 'the driver\'s close() settles');
  t.same(await Promise.all(reads), Array(6).fill('E_CLOSED'), 'every read settles with E_CLOSED');
});

t.test('net: a send in flight when the device is reset() rejects E_CLOSED', async (t) => {
  const sim = createSimDevice({ type: 'net', completion: 'manual' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => net.close());
  const sent = settledCode(net.send(new Uint8Array(60).fill(1)), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  await net.device.reset();
  t.equal(await sent, 'E_CLOSED', 'the send settles with E_CLOSED');
});

t.test('a raw QueueSet request in flight when the device is reset() rejects E_CLOSED', async (t) => {
  const { sim, dev, settled } = await heldRequest(t);
  t.equal(sim.held, 1, 'the device holds the request');
  await dev.reset();
  t.equal(await settled, 'E_CLOSED', 'the request settles with E_CLOSED');
});

// VirtioDevice.fail() — the driver gives up on the device (virtio 1.2 §3.1.1: FAILED) — with
// requests pending stranded them: the device stops processing once FAILED shows, the phase goes
// straight to 'failed' without telling anyone (no onFailure), the QueueSet's watchdog sees a
// device that is not live and disarms, and a blk read in flight or waiting for room on the ring
// never settled (the same for a net send, a console write and a raw QueueSet's request). What
// should happen: fail() settles them as a device-raised DEVICE_NEEDS_RESET does — the device is
// reset (so it no longer writes into the buffers), left showing FAILED, and every pending request
// rejects with E_DEVICE_FAILED; later requests are refused at once; onFailure listeners hear it.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { Status } from '../../lib/spec/index.js';
import { openTransport } from '../../lib/open.js';
import { settledCode } from '../support/codes.js';
import { heldRequest } from '../support/held-request.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

t.test('blk: a read in flight when the device is failed with fail() rejects E_DEVICE_FAILED', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => blk.close());
  const heard: string[] = [];
  blk.device.onFailure((e) => heard.push(e.code));
  const read = settledCode(blk.read(0, 8), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.equal(sim.held, 1, 'the read is on the device');
  blk.device.fail();
  t.equal(await read, 'E_DEVICE_FAILED', 'the read in flight settles with E_DEVICE_FAILED');
  t.same(heard, ['E_DEVICE_FAILED'], 'onFailure listeners hear it');
  t.equal(blk.device.phase, 'failed', 'the device is given up');
  t.ok((blk.device.status() & Status.FAILED) !== 0, 'and shows FAILED');
  t.equal(await settledCode(blk.read(0, 8), 3000), 'E_DEVICE_FAILED', 'a later read is refused with the same code');
  t.equal(await settledCode(blk.recover(), 3000), 'E_BAD_STATE', 'recover() refuses a device given up');
  t.same(sim.violations.map((v) => v.id), [], 'no device rule broken');
});

t.test('blk: reads waiting for room on the ring when the device is failed reject E_DEVICE_FAILED', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { queueSize: 4, depth: 8, indirect: false });
  t.teardown(() => blk.close());
  const reads = Array.from({ length: 6 }, (_, i) => settledCode(blk.read(i * 8, 8), 3000));
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.ok(blk.requests.pending > blk.requests.vq.inFlight, 'some reads wait for room on the ring');
  blk.device.fail();
  t.same(await Promise.all(reads), Array(6).fill('E_DEVICE_FAILED'), 'every read settles with E_DEVICE_FAILED');
});

t.test('blk: reads waiting for a slot (depth) when the device is failed settle', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { depth: 1 });
  t.teardown(() => blk.close());
  const reads = Array.from({ length: 4 }, (_, i) => settledCode(blk.read(i * 8, 8), 3000));
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  blk.device.fail();
  t.same(await Promise.all(reads), Array(4).fill('E_DEVICE_FAILED'), 'every read settles with E_DEVICE_FAILED');
});

t.test('net: a send in flight when the device is failed rejects E_DEVICE_FAILED', async (t) => {
  const sim = createSimDevice({ type: 'net', completion: 'manual' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => net.close());
  const sent = settledCode(net.send(new Uint8Array(60).fill(1)), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  net.device.fail();
  t.equal(await sent, 'E_DEVICE_FAILED', 'the send settles with E_DEVICE_FAILED');
});

t.test('console: end() with a write in flight when the device is failed settles', async (t) => {
  const sim = createSimDevice({ type: 'console', multiport: false, loopback: false, completion: 'manual' });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => con.close());
  const port = con.ports.get(0)!;
  // end() waits until the device took every byte: the write in flight settles it, or the port's error.
  const ended = settledCode(new Promise<void>((resolve, reject) => {
    port.once('error', reject);
    port.once('finish', resolve);
    port.end(new Uint8Array(16).fill(65));
  }), 3000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await turns(1);
  t.equal(sim.held, 1, 'the write is on the device');
  con.device.fail();
  t.equal(await ended, 'E_DEVICE_FAILED', 'the port\'s end() settles: its error is E_DEVICE_FAILED');
});

t.test('a raw QueueSet request in flight when the device is failed rejects E_DEVICE_FAILED', async (t) => {
  const { sim, dev, settled } = await heldRequest(t);
  t.equal(sim.held, 1, 'the device holds the request');
  dev.fail();
  t.equal(await settled, 'E_DEVICE_FAILED', 'the request settles with E_DEVICE_FAILED');
});

t.test('blk: reads held by a stop (in flight, and waiting for the resume) when the device is failed settle', async (t) => {
  const { transport } = await openTransport('sim:blk?state=ring-state&mode=hold&latency=50');
  const blk = await BlkDriver.open(transport);
  t.teardown(() => blk.close());
  const inFlight = settledCode(blk.read(0, 8), 3000);
  await turns(5);
  await blk.stop();
  const waiting = settledCode(blk.read(8, 8), 3000);
  blk.device.fail();
  t.equal(await inFlight, 'E_DEVICE_FAILED', 'the read the stop held in flight settles with E_DEVICE_FAILED');
  t.equal(await waiting, 'E_DEVICE_FAILED', 'the read waiting for the resume too');
  t.equal(await settledCode(blk.resume(), 3000), 'E_BAD_STATE', 'resume() refuses a device given up');
});

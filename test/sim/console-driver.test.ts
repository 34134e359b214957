// ConsoleDriver on the reference console (virtio 1.2 §5.3): port 0 without MULTIPORT, port
// discovery with it (DEVICE_ADD, PORT_NAME, CONSOLE_PORT, PORT_OPEN both ways), bytes both ways
// through each port's host side, ports added and removed while running, RESIZE, EMERG_WRITE, and
// ports as streams that pipeline() and for await take.

import t from 'tap';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { ConsoleFeature } from '../../lib/spec/index.js';
import { codeOfAsync } from '../support/codes.js';
import { bringUp, pattern, readN, until } from '../support/console.js';

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: without MULTIPORT, port 0 is there at once and echoes through the loopback`, async (t) => {
    const { con } = await bringUp(t, { multiport: false }, { layout });
    t.notOk(con.multiport);
    t.equal(con.maxPorts, 1);
    const port = con.ports.get(0)!;
    t.ok(port.hostOpen, 'port 0 is open without MULTIPORT');
    const data = pattern(100_000);
    port.write(data);
    t.same(await readN(port, data.length), data, '100 000 bytes out and back, in order');
    t.same(con.size, { cols: 80, rows: 25 }, 'SIZE: cols and rows from the configuration');
  });
}

t.test('MULTIPORT: DEVICE_READY, then each added port is readied, named, marked console and opened', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 3, loopback: false });
  t.ok(con.multiport);
  t.equal(con.maxPorts, 8);
  const p2 = await con.waitForPort('uvirtio.port.2');
  t.equal(p2.id, 2);
  await until(() => con.ports.size === 3 && (con.ports.get(0)?.console ?? false));
  t.same([...con.ports.keys()].sort(), [0, 1, 2]);
  t.ok(con.ports.get(0)!.console, 'port 0 marked CONSOLE_PORT');
  t.notOk(p2.console);
  t.equal(con.ports.get(1)!.name, 'uvirtio.port.1');
  t.ok(sim.driverReady);
  await until(() => sim.port(2)!.guestOpen && p2.hostOpen);
  t.ok(sim.port(2)!.guestOpen, 'the driver sent PORT_OPEN 1');
  t.ok(p2.hostOpen, 'the host side is open (PORT_OPEN 1 from the device)');
  t.equal(con.badControl, 0);
});

t.test('MULTIPORT: bytes both ways through a port\'s host side, each port apart', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 3, loopback: false });
  const [p1, p2] = [await con.waitForPort(1), await con.waitForPort(2)];
  await until(() => sim.port(1)!.guestOpen && sim.port(2)!.guestOpen);
  sim.port(1)!.send('to port one');
  sim.port(2)!.send(pattern(20_000, 3));
  t.equal((await readN(p1, 11)).toString(), 'to port one');
  t.same(await readN(p2, 20_000), pattern(20_000, 3));
  await new Promise<void>((resolve) => p1.write('from the driver', () => resolve()));
  await until(() => sim.port(1)!.written === 15);
  t.equal(Buffer.from(sim.port(1)!.take()).toString(), 'from the driver');
  t.equal(sim.port(2)!.written, 0, 'nothing crossed to port 2');
});

t.test('pipeline(): a 1 MiB source through the loopback port into a sink, byte for byte', async (t) => {
  const { con } = await bringUp(t, { ports: 2 });
  const port = await con.waitForPort(1);
  await until(() => port.hostOpen);
  const data = pattern(1 << 20, 5);
  const parts: Buffer[] = [];
  await pipeline(Readable.from([data.subarray(0, 300_000), data.subarray(300_000)]), port, async (source: AsyncIterable<Buffer>) => {
    let got = 0;
    for await (const c of source) {
      parts.push(c);
      got += c.length;
      if (got >= data.length) return;
    }
  });
  t.same(Buffer.concat(parts), data);
});

t.test('ports added and removed while running; the host closing and opening its side', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 1, loopback: false });
  const added: number[] = [];
  con.onPort((p) => added.push(p.id));
  sim.addPort({ id: 5, name: 'late' });
  const late = await con.waitForPort('late');
  t.same(added, [5]);
  await until(() => sim.port(5)!.guestOpen);
  const ended = new Promise((resolve) => late.on('end', resolve));
  late.on('error', () => undefined); // the failed write below also emits 'error', as a Node stream does
  late.resume();
  t.ok(sim.removePort(5));
  await ended;
  t.notOk(con.ports.has(5), 'DEVICE_REMOVE ends the port');
  t.equal(await new Promise((resolve) => late.write('x', (e) => resolve((e as { code?: string } | null)?.code))), 'E_CLOSED', 'a write after the removal fails E_CLOSED');
  sim.addPort({ id: 5, name: 'again' });
  const again = await con.waitForPort('again');
  t.not(again, late, 'added again: a new stream');
  const p0 = await con.waitForPort(0);
  const events: string[] = [];
  p0.on('host-close', () => events.push('close')).on('host-open', () => events.push('open'));
  sim.port(0)!.close();
  await until(() => events.length === 1);
  sim.port(0)!.open();
  await until(() => events.length === 2);
  t.same(events, ['close', 'open']);
  t.equal(con.badControl, 0);
});

t.test('RESIZE to a console port; the configuration too', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2 });
  const p0 = await con.waitForPort(0);
  await until(() => p0.console);
  const got = new Promise((resolve) => p0.once('resize', resolve));
  sim.resize(132, 43);
  t.same(await got, { cols: 132, rows: 43 });
  t.same(con.size, { cols: 132, rows: 43 });
});

t.test('EMERG_WRITE: characters through emerg_wr, refused when not offered', async (t) => {
  const { sim, con } = await bringUp(t, { multiport: false });
  t.ok(con.device.has(ConsoleFeature.EMERG_WRITE));
  con.emergencyWrite('panic!');
  t.equal(Buffer.from(sim.emergency).toString(), 'panic!');
  const { con: without } = await bringUp(t, { multiport: false, emergWrite: false });
  t.throws(() => without.emergencyWrite('x'), { code: 'E_FEATURE_MISSING' });
});

t.test('waitForPort is bounded; open refuses another device type and bad options', async (t) => {
  const { con } = await bringUp(t, { ports: 1 });
  t.equal(await codeOfAsync(con.waitForPort('nobody', 50)), 'E_REQUEST_TIMEOUT');
  const rng = createSimDevice({ type: 'rng' });
  t.equal(await codeOfAsync(ConsoleDriver.open(new VirtioPciTransport(rng.fn))), 'E_NOT_VIRTIO');
  const dev = createSimDevice({ type: 'console' });
  t.equal(await codeOfAsync(ConsoleDriver.open(new VirtioPciTransport(dev.fn), { rxBuffers: 0 })), 'E_INVALID_ARGUMENT');
});

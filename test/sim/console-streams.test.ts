// Console ports under pressure and under a hostile device: back-pressure both ways (a full
// transmit queue makes write() return false and 'drain' follows; a paused reader stops the
// reposting of receive buffers, so the device keeps the host's bytes), and control messages a
// device should never send — each ignored and counted, the ports going on working.

import t from 'tap';
import { ConsoleEvent, encodeConsoleControl } from '../../lib/spec/index.js';
import { bringUp, pattern, readN, until } from '../support/console.js';

t.test('writing: a transmit queue the device does not empty makes write() return false; drain follows', async (t) => {
  const { sim, con } = await bringUp(t, { multiport: false, loopback: false, completion: 'manual' });
  const port = con.ports.get(0)!;
  const data = pattern(400_000);
  let refusedAt = -1;
  for (let at = 0; at < data.length; at += 4096) if (!port.write(data.subarray(at, at + 4096)) && refusedAt < 0) refusedAt = at;
  t.ok(refusedAt >= 0 && refusedAt < 64 * 1024, `write() returned false from byte ${refusedAt} on (the stream's high-water mark)`);
  await until(() => false, 30);
  t.equal(sim.held, 8, 'the ring holds the port\'s 8 transmit buffers; the device takes none');
  t.ok(port.writableNeedDrain, 'no drain while the device takes nothing');
  t.ok(port.writableLength >= data.length - 8 * 4096, `what is not in the ring waits in the stream (${port.writableLength} bytes)`);
  let drained = false;
  port.once('drain', () => (drained = true));
  while (!drained) {
    sim.completeNow();
    await new Promise((r) => setImmediate(r));
  }
  t.pass('drain once the device took the bytes');
  const done = new Promise((resolve) => port.end(resolve));
  while (sim.port(0)!.written < data.length) {
    sim.completeNow();
    await new Promise((r) => setImmediate(r));
  }
  await done;
  t.same(Buffer.from(sim.port(0)!.take()), data, 'every byte once, in order');
});

t.test('reading: a paused port stops reposting; the device keeps the bytes until the reader resumes', async (t) => {
  const { sim, con } = await bringUp(t, { multiport: false, loopback: false });
  const port = con.ports.get(0)!;
  const data = pattern(1 << 20);
  sim.port(0)!.send(data);
  await until(() => false, 50);
  const held = sim.port(0)!.pending;
  t.ok(held > data.length / 2, `the device still holds ${held} of ${data.length} bytes`);
  t.ok(port.readableLength <= 64 * 1024, `the stream buffers no more than its high-water mark and the ring (${port.readableLength})`);
  t.same(await readN(port, data.length), data, 'resumed: every byte once, in order');
  t.equal(sim.port(0)!.pending, 0);
});

t.test('hostile control messages are ignored and counted; the ports go on working', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2 });
  const p1 = await con.waitForPort(1);
  await until(() => p1.hostOpen);
  const hostile: [string, Uint8Array][] = [
    ['a port beyond max_nr_ports', encodeConsoleControl(99, ConsoleEvent.DEVICE_ADD, 0)],
    ['port 0xffffffff', encodeConsoleControl(0xffffffff, ConsoleEvent.PORT_OPEN, 1)],
    ['an unknown event', encodeConsoleControl(1, 42, 0)],
    ['DEVICE_READY, which only a driver sends', encodeConsoleControl(1, ConsoleEvent.DEVICE_READY, 1)],
    ['PORT_READY, which only a driver sends', encodeConsoleControl(1, ConsoleEvent.PORT_READY, 1)],
    ['DEVICE_ADD twice', encodeConsoleControl(1, ConsoleEvent.DEVICE_ADD, 0)],
    ['DEVICE_REMOVE of a port never added', encodeConsoleControl(6, ConsoleEvent.DEVICE_REMOVE, 0)],
    ['PORT_NAME for a port never added', encodeConsoleControl(7, ConsoleEvent.PORT_NAME, 1, Buffer.from('ghost'))],
    ['a name too long', encodeConsoleControl(1, ConsoleEvent.PORT_NAME, 1, Buffer.alloc(300, 0x41))],
    ['RESIZE without its size', encodeConsoleControl(0, ConsoleEvent.RESIZE, 0)],
    ['PORT_OPEN 7', encodeConsoleControl(1, ConsoleEvent.PORT_OPEN, 7)],
    ['a message of 4 bytes', Uint8Array.of(1, 0, 0, 0)],
  ];
  for (const [, msg] of hostile) sim.injectControl(msg);
  await until(() => con.badControl >= hostile.length);
  t.equal(con.badControl, hostile.length, hostile.map(([what]) => what).join('; '));
  t.equal(con.lastBadControl?.code, 'E_DEVICE_SHORT_USED_LEN', 'the last one: too short to be a message');
  t.equal(p1.name, 'uvirtio.port.1', 'the name stayed');
  t.ok(p1.hostOpen, 'PORT_OPEN 7 did not close it');
  t.same([...con.ports.keys()].sort(), [0, 1], 'no port appeared or vanished');
  t.equal(con.device.phase, 'live');
  p1.write('still working');
  t.equal((await readN(p1, 13)).toString(), 'still working');
});

t.test('PORT_NAME with a NUL terminator (as QEMU sends it) names the port without it; CONSOLE_PORT is answered PORT_OPEN 1', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2 });
  const p1 = await con.waitForPort('uvirtio.port.1');
  sim.injectControl(encodeConsoleControl(1, ConsoleEvent.PORT_NAME, 1, Buffer.from('org.qemu.guest_agent.0\0')));
  t.equal((await con.waitForPort('org.qemu.guest_agent.0')).id, 1);
  t.equal(p1.name, 'org.qemu.guest_agent.0');
  const sentBefore = sim.stats.completed[3]!;
  sim.injectControl(encodeConsoleControl(1, ConsoleEvent.CONSOLE_PORT, 1));
  await until(() => sim.stats.completed[3]! > sentBefore);
  t.ok(p1.console);
  t.equal(sim.stats.completed[3]! - sentBefore, 1, 'one message on the control transmitq: PORT_OPEN 1');
  t.ok(sim.port(1)!.guestOpen);
  t.equal(con.badControl, 0);
});

// A careless user and a hostile device against the console driver: what broke once stays tested.

import t from 'tap';
import { ConsoleEvent, encodeConsoleControl } from '../../lib/spec/index.js';
import { bringUp, until } from '../support/console.js';

t.test('close() with writes in flight: the write callback gets E_CLOSED, the port closes without an \'error\' (no listener needed)', async (t) => {
  const { con } = await bringUp(t, { multiport: false, loopback: false, completion: 'manual' });
  const port = con.ports.get(0)!;
  const errors: Error[] = [];
  let writeError: (Error & { code?: string }) | null | undefined;
  let closed = false;
  // Listening for 'error' only to count: without a listener an 'error' would end the process.
  port.on('error', (e) => errors.push(e));
  port.on('close', () => (closed = true));
  port.write(Buffer.alloc(100_000), (e) => (writeError = e));
  await until(() => false, 20);
  await con.close();
  await until(() => closed && writeError !== undefined);
  t.equal(writeError?.code, 'E_CLOSED', 'the pending write fails with E_CLOSED');
  t.same(errors.map((e) => (e as { code?: string }).code), [], 'no \'error\' event: closing the driver is the user\'s own act');
  t.ok(closed, '\'close\' follows');
});


t.test('waitForPort with a number no port can have: E_INVALID_ARGUMENT at once, not a time-out', async (t) => {
  const { con } = await bringUp(t, { ports: 2, maxPorts: 4 });
  for (const which of [4, 99, -1, 1.5, Number.NaN]) {
    const started = Date.now();
    const e = await con.waitForPort(which, 2000).then(() => null, (err: Error & { code?: string; hint?: string }) => err);
    t.equal(e?.code, 'E_INVALID_ARGUMENT', `waitForPort(${which}) refused`);
    t.match(e?.hint, /max_nr_ports 4/, 'the hint names the range');
    t.ok(Date.now() - started < 1000, 'at once');
  }
  t.equal((await con.waitForPort(3, 50).catch((err: Error & { code?: string }) => err) as { code?: string }).code, 'E_REQUEST_TIMEOUT',
    'a port number below max_nr_ports the device has not added still waits (bounded)');
});

t.test('a flood of CONSOLE_PORT while the device takes no control message: the driver queues a bounded number of replies', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2 }, { requestTimeoutMs: 30_000 });
  const port = await con.waitForPort(1);
  await until(() => sim.port(1)!.guestOpen);
  sim.injectFault({ kind: 'completion-silence', queue: 3 }); // the control transmitq (§5.3.2)
  const dma = con.device.dma;
  const alloc = dma.alloc.bind(dma);
  let allocated = 0;
  dma.alloc = (...args: Parameters<typeof dma.alloc>) => {
    allocated++;
    return alloc(...args);
  };
  t.teardown(() => {
    dma.alloc = alloc;
  });
  for (let i = 0; i < 2000; i++) {
    sim.injectControl(encodeConsoleControl(1, ConsoleEvent.CONSOLE_PORT, 1));
    if (i % 8 === 7) await new Promise((r) => setImmediate(r));
  }
  await until(() => false, 50);
  t.ok(port.console, 'the port is marked a console');
  t.ok(allocated <= 4, `${allocated} control buffer(s) allocated for 2000 CONSOLE_PORT (each answered by the same pending PORT_OPEN 1)`);
  sim.clearFaults();
  await until(() => false, 100);
  t.equal(con.device.phase, 'live', 'the device goes on');
  t.equal(sim.badControl, 0, 'nothing the device could not use');
});

t.test('without MULTIPORT, port 0 ended by a device failure comes back after recover(): a new stream that reads and writes', async (t) => {
  const { sim, con } = await bringUp(t, { multiport: false, loopback: false });
  const old = con.ports.get(0)!;
  const failed = new Promise((resolve) => old.once('error', resolve));
  old.write(Buffer.alloc(20_000));
  sim.injectFault({ kind: 'needs-reset' });
  t.equal(((await failed) as { code?: string }).code, 'E_DEVICE_NEEDS_RESET', 'the stream errors with the device\'s failure');
  const announced: number[] = [];
  con.onPort((p) => announced.push(p.id));
  await con.recover();
  const port = await con.waitForPort(0, 1000);
  t.not(port, old, 'a new stream for port 0');
  t.same(announced, [0], 'onPort tells');
  const got: Buffer[] = [];
  port.on('data', (c: Buffer) => got.push(c));
  sim.port(0)!.send(Buffer.from('after'));
  await new Promise<void>((resolve) => port.end('again', resolve));
  await until(() => Buffer.concat(got).length >= 5);
  t.equal(Buffer.concat(got).toString(), 'after', 'the host\'s bytes arrive');
  t.equal(Buffer.from(sim.port(0)!.take()).toString().endsWith('again'), true, 'what it writes reaches the host');
});

t.test('a device that removes and adds a port over and over costs no more DMA memory: its streams share the number\'s transmit buffers', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false });
  const dma = con.device.dma;
  const { alloc, free } = { alloc: dma.alloc.bind(dma), free: dma.free.bind(dma) };
  let outstanding = 0;
  dma.alloc = (...args: Parameters<typeof dma.alloc>) => {
    const r = alloc(...args);
    outstanding++;
    return r;
  };
  dma.free = (r) => {
    outstanding--;
    free(r);
  };
  t.teardown(() => Object.assign(dma, { alloc, free }));
  for (let i = 0; i < 20; i++) {
    const port = await con.waitForPort(1);
    await new Promise((resolve) => port.write(Buffer.alloc(40_000), resolve));
    await until(() => sim.port(1)!.written >= 40_000); // a new host side each time the device adds the port
    if (i % 2) port.destroy(); // the user closes it; the device removes it
    sim.removePort(1);
    await until(() => !con.ports.has(1));
    sim.addPort({ id: 1 });
  }
  t.ok(outstanding <= 8, `${outstanding} DMA region(s) more after 20 add/remove cycles with writes (8: one port number's transmit buffers)`);
});

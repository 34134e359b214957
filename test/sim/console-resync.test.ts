// A reinit onto a device that does not have every port the driver knew (same max_nr_ports, fewer
// ports added): the spec has no "no more ports" message (virtio 1.2 §5.3.6.2), so the driver holds
// writes to a known port until the device adds it again, and fails them with E_CLOSED when it has
// not within CONSOLE_PORT_WAIT_MS. Before, such writes reported success while the device dropped them.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { CONSOLE_PORT_WAIT_MS } from '../../drivers/console/index.js';
import { bringUp, until } from '../support/console.js';

t.test('reinit onto a device without port 1: writes to port 1 are held, then fail with E_CLOSED; port 0 goes on', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false, state: { ringState: true } });
  const port0 = await con.waitForPort(0);
  const port1 = await con.waitForPort(1);
  await until(() => sim.port(1)!.guestOpen);
  const errors: Error[] = [];
  port1.on('error', (e) => errors.push(e));
  t.equal(await con.stop(), 'ring-state');
  const snap = con.snapshot();
  const target = createSimDevice({ type: 'console', ports: 1, loopback: false, state: { ringState: true }, dma: sim.fn.dma });
  t.teardown(() => target.fn.close());
  await con.reinit(snap, { target: new VirtioPciTransport(target.fn) });
  const started = Date.now();
  const written = new Promise<Error | null | undefined>((resolve) => port1.write(Buffer.from('lost?'), resolve));
  port0.write(Buffer.from('still here'));
  await until(() => target.port(0)!.written >= 10);
  t.equal(target.port(0)!.written, 10, 'port 0, which the target added again, takes writes');
  const e = await written;
  t.equal((e as { code?: string } | null | undefined)?.code, 'E_CLOSED', 'the write to the port the target lacks fails');
  t.match(e?.message, /not added again by the device within \d+ ms \(CONSOLE_PORT_WAIT_MS\)/, 'and names the bound');
  t.ok(Date.now() - started >= CONSOLE_PORT_WAIT_MS - 50, 'after the bound, not before');
  t.notOk(con.ports.has(1), 'port 1 is gone from the driver');
  await until(() => errors.length > 0, 500);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(errors.length, 1, "the stream's 'error' once");
  t.equal((errors[0] as { code?: string } | undefined)?.code, 'E_CLOSED');
});

t.test('reinit onto the same device: held writes go on once the device adds the port again, none lost', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false, state: { ringState: true } });
  const port1 = await con.waitForPort(1);
  await until(() => sim.port(1)!.guestOpen);
  await con.stop();
  await con.reinit(con.snapshot());
  const written = new Promise<Error | null | undefined>((resolve) => port1.write(Buffer.from('after the reinit'), resolve));
  t.notOk(await written, 'the write completes');
  await until(() => sim.port(1)!.written >= 16);
  t.equal(sim.port(1)!.written, 16, 'every byte reached the host side');
  t.ok(con.ports.has(1));
});

// Listener sites 95b16b2 left out: a ConsolePort is a Node stream (EventEmitter), and the driver
// emits on it from inside its receive promise chains. ConsoleDriver.fromDevice does
// `p.emit('resize', p.size)` from ControlChannel.post's `.then(...)`, and PortRx.post's `.then`
// calls port.deliver() → Readable.push(), which emits 'data' synchronously to a flowing reader.
// A 'resize' or 'data' listener that throws therefore rejects the promise `.then` returns, which
// nobody handles: an unhandled rejection (by default the process ends) — the very fault the commit
// fixed for onFrame. For 'data' the receive buffer is not posted again either (post(buf) comes
// after deliver), so every throw costs the port a buffer until its receive queue is empty.

import t from 'tap';
import type { Test } from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { ConsoleDriver } from '../../drivers/console/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Unhandled rejections seen while `t` runs (instead of the process ending). */
function collectRejections(t: Test): unknown[] {
  const seen: unknown[] = [];
  const on = (e: unknown): void => { seen.push(e); };
  process.on('unhandledRejection', on);
  t.teardown(() => { process.off('unhandledRejection', on); });
  return seen;
}

t.test("a console port 'resize' listener that throws ends in no unhandled rejection, and control messages go on", async (t) => {
  const rejections = collectRejections(t);
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1 });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => con.close());
  const port = await con.waitForPort(0);
  await sleep(20); // the device sends RESIZE to a port once it is ready
  let calls = 0;
  port.on('resize', () => { calls++; throw new Error('resize listener bug'); });
  sim.resize(100, 40);
  await sleep(20);
  t.equal(calls, 1, 'the resize listener was called');
  t.same(rejections.map(String), [], 'no unhandled rejection');
  sim.addPort({ id: 1 });
  const p1 = await Promise.race([con.waitForPort(1), sleep(500).then(() => undefined)]);
  t.ok(p1, 'a port the device adds afterwards still arrives');
});

t.test("a console port 'data' listener that throws ends in no unhandled rejection and costs no receive buffer", async (t) => {
  const rejections = collectRejections(t);
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1 });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 2 });
  t.teardown(() => con.close());
  const port = await con.waitForPort(0);
  let chunks = 0;
  let throwing = true;
  port.on('data', () => { chunks++; if (throwing) throw new Error('data listener bug'); });
  for (let i = 0; i < 3; i++) { sim.port(0)!.send(`x${i}`); await sleep(5); }
  t.same(rejections.map(String), [], 'no unhandled rejection');
  throwing = false;
  const before = chunks;
  sim.port(0)!.send('after');
  await sleep(30);
  t.ok(chunks > before, `bytes sent afterwards still arrive (chunks ${before} → ${chunks})`);
});

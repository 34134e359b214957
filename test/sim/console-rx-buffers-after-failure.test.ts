// Found by a breaker (fixed: drivers/dma-buffers.ts RxBuffers, shared with net — PortRx and ControlChannel keep a buffer a halted queue refuses idle, ConsoleDriver.recover()/reinit() post it again).
// The net fix (a receive buffer refused by a halted queue is kept idle and posted again by
// recover()) was not made for the console, which now receives through the same submitCb path.
// At a device failure QueueSet.settleFailure halts every queue, resets the device and takes the
// used ring (processUsed): each console receive buffer the device had filled comes back through
// PortRx.filled (drivers/console/port.ts) or ControlChannel.received (control.ts), which post it
// again at once — into a halted RequestQueue, which refuses it (settleLater with the halt error),
// and the callback then drops it (`if (error || this.closed()) return`). So every buffer in the
// used ring at a failure is lost for good: with rxBuffers 4, three failures leave port 0 with 0
// receive buffers (the host's bytes never arrive again, receive stalls for good, uncounted) and
// the control receiveq with 3 fewer each time (eventually no DEVICE_ADD / RESIZE can arrive).
// Fixed as net was, with one helper (drivers/dma-buffers.ts RxBuffers) for both: when rq.haltedBy ||
// rq.error the buffer is kept idle unless the driver is closed, and ConsoleDriver.recover()/reinit()
// post the idle ones again after super.recover()/super.reinit(), before DEVICE_READY.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { ConsoleQueue } from '../../lib/spec/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A MULTIPORT console with port 0 up and 4 receive buffers per port; `pending(q)`: requests in flight on queue q. */
async function bringUp(t: { teardown(fn: () => unknown): void }) {
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1 });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 4, interrupts: 'msix' });
  t.teardown(() => con.close());
  const port = await con.waitForPort(0);
  await sleep(20);
  const pending = (q: number): number => (con as unknown as { queues: { get(i: number): { pending: number } } }).queues.get(q)!.pending;
  return { sim, con, port, pending };
}

t.test('console: receive buffers in the used ring at a device failure are posted again by recover()', async (t) => {
  const { sim, con, port, pending } = await bringUp(t);
  const controlBefore = pending(ConsoleQueue.CONTROL_RECEIVEQ);
  t.equal(pending(0), 4, 'port 0 has its 4 receive buffers posted');
  let got = '';
  port.on('data', (b: Buffer) => { got += b.toString(); });
  const portPosted: number[] = [];
  const controlPosted: number[] = [];
  for (let round = 1; round <= 3; round++) {
    // Bytes and a control message the device delivered but the driver had not looked at yet.
    sim.injectFault({ kind: 'interrupt-silence' });
    for (let i = 0; i < 3; i++) { sim.port(0)!.send(`r${round}c${i};`); await sleep(2); }
    sim.resize(80 + round, 25);
    await sleep(5);
    sim.injectFault({ kind: 'needs-reset' });
    for (let i = 0; i < 200 && con.device.phase === 'live'; i++) await sleep(1);
    sim.clearFaults();
    await con.recover();
    await sleep(30);
    portPosted.push(pending(0));
    controlPosted.push(pending(ConsoleQueue.CONTROL_RECEIVEQ));
  }
  t.same(portPosted, [4, 4, 4], 'after every recover() port 0 has all 4 receive buffers posted');
  t.same(controlPosted, [controlBefore, controlBefore, controlBefore], 'and the control receiveq all of its buffers');
  const now = await Promise.race([con.waitForPort(0), sleep(500).then(() => undefined)]);
  let after = '';
  now?.on('data', (b: Buffer) => { after += b.toString(); });
  sim.port(0)!.send('AFTER');
  for (let i = 0; i < 100 && !after.includes('AFTER') && !got.includes('AFTER'); i++) await sleep(2);
  t.ok(after.includes('AFTER') || got.includes('AFTER'), 'bytes the host sends after the last recover() arrive');
});

t.test('console: a paused reader\'s held-back buffers, resumed while the queue is halted, are posted again by recover()', async (t) => {
  // PortRx.resume() posts the buffers held back for a full reader: into a halted queue they were lost too.
  const { sim, con, port, pending } = await bringUp(t);
  const rx = (con as unknown as { rx: Map<number, { resume(): void }> }).rx.get(0)!;
  // No reader: the stream's buffer fills past its high-water mark and the receive buffers are held back.
  port.pause();
  const big = 'x'.repeat(8192);
  for (let i = 0; i < 8 && pending(0) > 0; i++) { sim.port(0)!.send(big); await sleep(5); }
  t.ok(pending(0) < 4, `buffers held back for the paused reader (${pending(0)} posted)`);
  sim.injectFault({ kind: 'needs-reset' });
  for (let i = 0; i < 200 && con.device.phase === 'live'; i++) await sleep(1);
  t.equal(con.device.phase, 'needs-reset', 'the device failed');
  // The reader wants more while the queues are halted: resume() must keep what the queue refuses.
  rx.resume();
  sim.clearFaults();
  await con.recover();
  // The reader takes everything now (bytes the device still had are read, not held back).
  port.on('data', () => undefined);
  port.resume();
  await sleep(50);
  t.equal(pending(0), 4, 'after recover() port 0 has all 4 receive buffers posted');
});

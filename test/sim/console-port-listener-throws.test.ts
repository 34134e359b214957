// A ConsolePort is a Node stream (EventEmitter), and the driver emits on it from inside its own
// work: a control message emits 'resize' (or 'host-open' / 'host-close'), a receive completion
// pushes bytes, which Node emits as 'data' synchronously to a flowing reader, and a write's or
// end()'s completion runs the user's callback. A listener or callback that throws must not unwind
// that work: it used to reject a promise nobody handled (by default the process ends) and, for
// 'data', lose the receive buffer (post(buf) came after deliver), so with rxBuffers 2 the port
// stopped receiving after two throws. Now what it throws is a process warning E_CALLBACK_THREW,
// the port's other listeners still hear the event, and the receive buffer is always posted again.
// (Listeners the driver keeps itself, onPort: test/sim/listener-throws.test.ts.)

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

/** Process warnings seen while `t` runs. */
function collectWarnings(t: Test): Error[] {
  const seen: Error[] = [];
  const on = (w: Error): void => { seen.push(w); };
  process.on('warning', on);
  t.teardown(() => { process.off('warning', on); });
  return seen;
}

const threw = (warnings: Error[], message: RegExp): number =>
  warnings.filter((w) => (w as { code?: string }).code === 'E_CALLBACK_THREW' && message.test(w.message)).length;

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

t.test("the throw is a process warning E_CALLBACK_THREW, and the port's other listeners still hear the event", async (t) => {
  const rejections = collectRejections(t);
  const warnings = collectWarnings(t);
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1 });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn), { rxBuffers: 2 });
  t.teardown(() => con.close());
  const port = await con.waitForPort(0);
  await sleep(20);
  const sizes: string[] = [];
  port.on('resize', () => { throw new Error('resize listener bug'); });
  port.on('resize', (s: { cols: number; rows: number }) => { sizes.push(`${s.cols}x${s.rows}`); });
  let got = '';
  port.on('data', () => { throw new Error('data listener bug'); });
  port.on('data', (b: Buffer) => { got += b.toString(); });
  sim.resize(100, 40);
  for (let i = 0; i < 4; i++) { sim.port(0)!.send(`x${i}`); await sleep(5); }
  await sleep(20);
  t.same(sizes, ['100x40'], 'the second resize listener heard the size');
  t.equal(got, 'x0x1x2x3', 'the second data listener got every byte (more chunks than receive buffers)');
  t.equal(threw(warnings, /console port 0 'resize' listener threw: resize listener bug/), 1, 'the resize listener\'s throw is a warning');
  t.equal(threw(warnings, /console port 0 'data' listener threw: data listener bug/), 4, 'each data listener throw is a warning');
  t.same(rejections.map(String), [], 'no unhandled rejection');
});

t.test('a write callback that throws ends in no unhandled rejection, and later writes go out', async (t) => {
  const rejections = collectRejections(t);
  const warnings = collectWarnings(t);
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1 });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => con.close());
  const port = await con.waitForPort(0);
  let seen = '';
  sim.port(0)!.onData((b) => { seen += new TextDecoder().decode(b); });
  port.write('one', () => { throw new Error('write callback bug'); });
  await sleep(20);
  await new Promise<void>((resolve, reject) => port.write('two', (e) => (e ? reject(e) : resolve())));
  await sleep(20);
  t.equal(seen, 'onetwo', 'both writes reached the device');
  t.equal(threw(warnings, /write or end\(\) callback of console port 0 threw: write callback bug/), 1, 'the callback\'s throw is a warning');
  t.same(rejections.map(String), [], 'no unhandled rejection');
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

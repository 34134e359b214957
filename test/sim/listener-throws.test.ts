// Listeners a user subscribes are called from inside the SDK's own work: a device failure being
// handled, a configuration interrupt, a console port's announcement. One that throws must not unwind
// that work — requests still settle, the other listeners still hear the event — and must not end
// the process: what it threw is a process warning (E_CALLBACK_THREW). (The net driver's onFrame:
// test/sim/net-listener-throws.test.ts.)

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { codeOfAsync } from '../support/codes.js';

function collectWarnings(t: { teardown(fn: () => void): void }): Error[] {
  const warnings: Error[] = [];
  const on = (w: Error): void => { warnings.push(w); };
  process.on('warning', on);
  t.teardown(() => { process.off('warning', on); });
  return warnings;
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
}

t.test('a failure listener and a configuration listener that throw: requests still settle, the others still hear', async (t) => {
  const warnings = collectWarnings(t);
  const sim = createSimDevice({ type: 'blk' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
  const qs = new QueueSet(dev);
  t.teardown(() => qs.close());
  const rq = qs.add(0);
  await dev.driverOk();
  const heard: string[] = [];
  dev.onFailure(() => { throw new Error('failure listener bug'); });
  dev.onFailure((e) => heard.push(`failure ${e.code}`));
  dev.onConfigChange(() => { throw Object.create(null); }); // not even an Error: no message, no toString
  dev.onConfigChange(() => heard.push('config'));
  // A malformed chain (a 4-byte blk header) makes the device set NEEDS_RESET.
  // A blk request whose header is 4 bytes, not 16 (in the driver's own memory: an address outside
  // it is refused at submit, E_BAD_CHAIN, and never reaches the device).
  const mem = dev.dma.alloc(4096);
  const bad = rq.submit([{ addr: mem.iova, len: 4 }], [{ addr: mem.iova + 16n, len: 1 }]);
  t.equal(await codeOfAsync(bad), 'E_DEVICE_NEEDS_RESET', 'the request settles with the device\'s failure');
  await until(() => heard.includes('config') && warnings.length >= 2);
  t.equal(dev.phase, 'needs-reset');
  t.ok(heard.includes('failure E_DEVICE_NEEDS_RESET'), 'the second failure listener heard it');
  t.ok(heard.includes('config'), 'the second configuration listener heard it');
  const codes = warnings.map((w) => (w as { code?: string }).code);
  t.same(codes.filter((c) => c === 'E_CALLBACK_THREW').length, warnings.length, 'every warning is E_CALLBACK_THREW');
  t.ok(warnings.some((w) => /device failure listener threw: failure listener bug/.test(w.message)), 'the failure listener\'s throw is named');
  t.ok(warnings.some((w) => /configuration change listener threw: an object/.test(w.message)), 'a prototype-less throw is named by kind');
  t.equal(await codeOfAsync(rq.submit([{ addr: mem.iova, len: 16 }], [])), 'E_DEVICE_NEEDS_RESET', 'new requests are refused until recover()');
});

t.test('a console port listener that throws: the other listeners still hear of the port', async (t) => {
  const warnings = collectWarnings(t);
  const sim = createSimDevice({ type: 'console', multiport: true, ports: 1 });
  const con = await ConsoleDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => con.close());
  const ports: number[] = [];
  con.onPort(() => { throw new Error('port listener bug'); });
  con.onPort((p) => ports.push(p.id));
  sim.addPort({ id: 5, name: 'late' });
  const late = await con.waitForPort('late');
  t.equal(late.id, 5, 'the port came up');
  t.same(ports, [5], 'the second listener heard of it');
  t.ok(warnings.some((w) => (w as { code?: string }).code === 'E_CALLBACK_THREW' && /console port listener threw: port listener bug/.test(w.message)));
});

t.test('a listener that is not a function is refused at once, with a code', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => dev.close());
  t.throws(() => dev.onFailure(42 as never), { code: 'E_INVALID_ARGUMENT', message: /failure listener must be a function, not 42/ });
  t.throws(() => dev.onConfigChange(null as never), { code: 'E_INVALID_ARGUMENT' });
});

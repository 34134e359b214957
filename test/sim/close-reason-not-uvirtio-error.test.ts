// close(reason) given a reason that is not a UvirtioError — a plain Error, a string, a number, a
// code-shaped object: what a JavaScript caller (or a TypeScript one with `as never`) passes. Today
// every driver's close() (StatefulDriver → QueueSet.close) takes it as it is and rejects each
// pending request with that bare value: a request's promise rejects with the string 'str' or the
// number 42, no code, no hint — README "Failure semantics": every request settles with data or a
// UvirtioError whose code says why; a public call given an argument of the wrong kind refuses it
// with E_INVALID_ARGUMENT. What should happen: close() refuses such a reason (E_INVALID_ARGUMENT,
// nothing closed, and a later close() settles the requests with E_CLOSED), or closes and rejects
// the requests with a UvirtioError (E_CLOSED carrying the caller's value as its cause); either
// way no request ever rejects with something that is not a UvirtioError.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { codeOfAsync } from '../support/codes.js';

const reasons: [string, unknown][] = [
  ['a plain Error', new Error('boom')],
  ['a string', 'str'],
  ['a number', 42],
  ['a code-shaped object', { code: 'E_CLOSED', message: 'mine' }],
];

for (const [name, reason] of reasons) {
  t.test(`BlkDriver.close(${name}): the pending request rejects with a UvirtioError`, async (t) => {
    const sim = createSimDevice({ type: 'blk', completion: 'manual' });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
    t.teardown(() => blk.close());
    const p = blk.read(0, 1);
    for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
    const closed = await codeOfAsync(blk.close(reason as never));
    t.ok(closed === 'no error' || closed === 'E_INVALID_ARGUMENT', `close() resolves or refuses the reason (got ${closed})`);
    if (closed === 'E_INVALID_ARGUMENT') await blk.close();
    const code = await codeOfAsync(p);
    t.notOk(code.startsWith('foreign'), `the request rejects with a UvirtioError (got ${code})`);
  });
}

t.test('QueueSet.close(\'str\') (your own driver): the pending request rejects with a UvirtioError', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const dev = await VirtioDevice.open(new VirtioPciTransport(sim.fn), {});
  const queues = new QueueSet(dev);
  t.teardown(() => queues.close());
  const rq = queues.add(0, { size: 16 });
  await dev.driverOk();
  const b = dev.dma.alloc(4096);
  new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 4 /* FLUSH */, true);
  const p = rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 1 }]);
  for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
  const closed = await codeOfAsync(queues.close('str' as never));
  if (closed === 'E_INVALID_ARGUMENT') await queues.close();
  const code = await codeOfAsync(p);
  t.notOk(code.startsWith('foreign'), `the request rejects with a UvirtioError (got ${code})`);
});

t.test('the E_CLOSED a non-UvirtioError close reason becomes carries the reason as its cause', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  const p = blk.read(0, 1);
  for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
  const reason = new Error('boom');
  await blk.close(reason as never);
  const e = await p.then(() => undefined, (x: unknown) => x as { code?: string; cause?: unknown; hint?: string });
  t.equal(e?.code, 'E_CLOSED');
  t.equal(e?.cause, reason, 'the caller\'s reason is the cause');
  t.ok(e?.hint, 'with a hint');
});


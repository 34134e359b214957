// A second stop() while one is under way is refused (E_BAD_STATE) and must change nothing: the
// first stop's queues stay paused, so no request reaches a ring the device is being stopped on.
// (Fixed: QueueSet.stop paused the queues, the device refused the second stop, and the refusal's
// clean-up unpaused every queue while the first stop went on; a quiesce then waited on requests
// that kept arriving.)

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { UvirtioError } from '../../lib/errors.js';
import type { Mechanism } from '../../lib/transport/types.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof UvirtioError ? e.code : `foreign ${String(e)}`;
  }
}

for (const mechanism of ['quiesce', 'ring-state', 'suspend'] as Mechanism[]) {
  t.test(`${mechanism}: a stop refused while another runs leaves the queues paused; nothing is added to a ring until resume or reinit`, async (t) => {
    const opened = await openTransport('sim:blk?latency=40');
    const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 5000 });
    t.teardown(() => blk.close());
    const before = [blk.read(0, 1), blk.read(1, 1)];
    const first = blk.stop({ mechanism, timeoutMs: 3000 });
    const second = await codeOf(blk.stop({ mechanism, timeoutMs: 3000 }));
    t.equal(second, 'E_BAD_STATE', 'the second stop is refused at once');
    // Submitted after the refusal, while the first stop runs: must wait (paused), not enter the ring.
    const inFlightBefore = blk.device.queue(0).inFlight;
    const late = blk.read(2, 1);
    await new Promise((r) => setImmediate(r));
    t.equal(blk.device.queue(0).inFlight, inFlightBefore, 'the request submitted during the stop waits outside the ring');
    t.equal(await codeOf(first), 'ok', 'the first stop completes');
    t.equal(blk.device.phase, 'stopped');
    if (mechanism === 'quiesce' || mechanism === 'suspend') await blk.resume();
    else await blk.reinit(blk.snapshot());
    const got = await Promise.all([...before, late]);
    t.same(got.map((b) => b.length), [512, 512, 512], 'every request completes once the device runs again');
  });
}

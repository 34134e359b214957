// VirtioDevice.stop(options, prepare) (ea5d6de): StopPreparation's doc says a preparation "may end
// its waits early on the signal's abort event". One whose promise rejects from its abort listener
// (with an error of its own, e.g. a wrapped timer it clears there) makes the stop
// reject with THAT error, not E_STOP_TIMEOUT / E_CLOSED: awaitPreparation's giveUp() aborts the
// signal before it rejects its own promise, so the preparation's rejection reaches Promise.race
// first. The stop's error is then untyped (README: errors are UvirtioErrors with stable codes).
// (Through QueueSet.stop the wrapper's extra await lets the stop's error win.) Breaker 26.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import type { StopPreparation } from '../../lib/virtio/device.js';
import { settledCode } from '../support/codes.js';


async function device(): Promise<VirtioDevice> {
  const opened = await openTransport('sim:blk?latency=5');
  const d = await VirtioDevice.open(opened.transport, {});
  await d.driverOk();
  return d;
}

const preparations: Record<string, StopPreparation> = {
  'rejects from its abort listener': (_deadline, signal) =>
    new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('preparation abandoned')), { once: true })),
  'rejects with its own error from an abort listener that also ends a wait': (_deadline, signal) =>
    new Promise<void>((resolve, reject) => {
      const wait = setTimeout(resolve, 60_000);
      signal.addEventListener('abort', () => { clearTimeout(wait); reject(new Error('the stop gave up')); }, { once: true });
    }),
};

for (const [name, prepare] of Object.entries(preparations)) {
  t.test(`a preparation that ${name}: the stop still rejects with its own typed error`, async (t) => {
    const a = await device();
    t.teardown(() => a.close());
    t.equal(await settledCode(a.stop({ timeoutMs: 150 }, prepare), 5000), 'E_STOP_TIMEOUT', 'at the deadline: E_STOP_TIMEOUT');
    t.equal(a.phase, 'live', 'the device runs on');

    const b = await device();
    const stopping = settledCode(b.stop({ timeoutMs: 60_000 }, prepare), 5000);
    await new Promise((r) => setTimeout(r, 20));
    await b.close();
    t.equal(await stopping, 'E_CLOSED', 'a close() meanwhile: E_CLOSED');
  });
}

// VirtioDevice.stop(options, prepare): a preparation is a driver's own code. One that throws at once,
// or rejects with something that is not a UvirtioError (a string, undefined, a plain Error, an
// object whose prototype trap throws), used to make stop() reject with that raw value — no code,
// no hint. The stop now fails with E_CALLBACK_THREW carrying it as the cause; the device was not
// asked to stop and runs on, and the preparation's signal is aborted. A UvirtioError it rejects with
// (a driver refusing the stop) is still the stop's error as it is.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import type { StopPreparation } from '../../lib/virtio/device.js';
import { UsageError, UvirtioError } from '../../lib/errors.js';

async function device(): Promise<VirtioDevice> {
  const opened = await openTransport('sim:blk');
  const d = await VirtioDevice.open(opened.transport, {});
  await d.driverOk();
  return d;
}

const hostileProxy = new Proxy({}, { getPrototypeOf() { throw new Error('trap'); } });

const cases: Record<string, { thrown: unknown; sync: boolean }> = {
  'rejects with a string': { thrown: 'no', sync: false },
  'rejects with undefined': { thrown: undefined, sync: false },
  'rejects with a plain Error': { thrown: new Error('driver bug'), sync: false },
  'rejects with a Proxy whose getPrototypeOf trap throws': { thrown: hostileProxy, sync: false },
  'throws a TypeError at once': { thrown: new TypeError('x is not a function'), sync: true },
  'throws a number at once': { thrown: 42, sync: true },
};

for (const [name, { thrown, sync }] of Object.entries(cases)) {
  t.test(`a preparation that ${name}: stop() rejects E_CALLBACK_THREW, the device runs on`, async (t) => {
    const d = await device();
    t.teardown(() => d.close());
    let signal: AbortSignal | undefined;
    const prepare: StopPreparation = (_deadline, s) => {
      signal = s;
      if (sync) throw thrown;
      return Promise.reject(thrown);
    };
    const error = await d.stop({ timeoutMs: 2000 }, prepare).then(() => null, (e: unknown) => e);
    t.ok(error instanceof UvirtioError, 'a UvirtioError');
    const e = error as UvirtioError;
    t.equal(e.code, 'E_CALLBACK_THREW');
    t.match(e.hint, /not asked to stop/, 'the hint says the device runs on');
    t.equal(e.cause, thrown, 'what the preparation threw is the cause');
    t.equal(d.phase, 'live', 'the device was not stopped');
    t.equal(signal?.aborted, true, "the preparation's signal is aborted");
    t.equal(await d.stop({ timeoutMs: 2000 }), (await d.mechanisms())[0], 'a later stop without the preparation works');
  });
}

t.test("a preparation that rejects with a UvirtioError refuses the stop with that error as it is", async (t) => {
  const d = await device();
  t.teardown(() => d.close());
  const refusal = new UsageError('E_BAD_STATE', 'the driver refuses', 'try later');
  const error = await d.stop({}, () => Promise.reject(refusal)).then(() => null, (e: unknown) => e);
  t.equal(error, refusal, 'the very error');
  t.equal(d.phase, 'live');
});

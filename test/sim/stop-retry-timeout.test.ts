// A hung device stays bounded by its request timeout even when the caller keeps retrying a stop.
// A quiesce stop that times out (E_STOP_TIMEOUT) leaves the device live and restarts the queues;
// that restart must not reset the watchdog's stall clock, or a retry loop faster than
// requestTimeoutMs keeps the hung device from ever being declared unresponsive and its request
// pending for ever. Found by a breaker against a restart() that disarmed the watchdog.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';

const REQUEST_TIMEOUT_MS = 800;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a hung device with stop attempts retried: the request is still rejected after the request timeout', async (t) => {
  const dev = createSimDevice({ type: 'blk', capacitySectors: 4096 });
  const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), { layout: 'split', interrupts: 'msix', requestTimeoutMs: REQUEST_TIMEOUT_MS });
  t.teardown(() => blk.close());
  dev.injectFault({ kind: 'completion-silence' });
  const started = Date.now();
  let result: string | null = null;
  void blk.read(0, 1).then(() => { result = 'completed'; }, (e: { code?: string }) => { result = `${e.code} after ${Date.now() - started} ms`; });
  const stops: string[] = [];
  while (result === null && Date.now() - started < 4 * REQUEST_TIMEOUT_MS) {
    await sleep(300);
    if (result !== null) break;
    try {
      stops.push(await blk.stop({ mechanism: 'quiesce', timeoutMs: 100 }));
      await blk.resume();
    } catch (e) {
      stops.push((e as { code: string }).code);
    }
  }
  t.match(result, /^E_DEVICE_UNRESPONSIVE/, `the read settled (${result ?? `still pending after ${Date.now() - started} ms`}; stop attempts: ${stops.join(', ')})`);
});

// ConsoleDriver.stop's preparation waits for PORT_OPEN 0 until the stop's own deadline (its own
// timer): when that timer fires before awaitPreparation's, the device IS asked to stop with the 1 ms
// left, and a ring-state STOP (one-way) that cannot show in 1 ms fails the device (needs-reset, its
// requests rejected). Seen in 28 of 30 stops with timeoutMs 100 (the timer race depends on the
// bound). Expected (9acbde1): a preparation still running at the deadline fails the stop with
// E_STOP_TIMEOUT, the device not asked to stop: it stays live. Breaker 25b.

import t from 'tap';
import { bringUp, until } from '../support/console.js';
import { ConsoleQueue } from '../../lib/spec/index.js';
import { UvirtioError } from '../../lib/errors.js';

t.test('a console stop whose PORT_OPEN 0 the device never takes times out and leaves the device live', async (t) => {
  const failed: string[] = [];
  for (const timeoutMs of [100, 150, 200, 101, 57, 80, 120, 160].flatMap((ms) => [ms, ms, ms])) {
    const { sim, con } = await bringUp(t, { ports: 2, loopback: false, state: { ringState: true } });
    await con.waitForPort(1);
    await until(() => sim.port(1)!.guestOpen);
    sim.injectFault({ kind: 'completion-silence', queue: ConsoleQueue.CONTROL_TRANSMITQ });
    const got = await con.stop({ mechanism: 'ring-state', timeoutMs }).then(
      (m) => `resolved ${m}`, (e: unknown) => (e instanceof UvirtioError ? e.code : 'untyped'));
    if (got !== 'E_STOP_TIMEOUT' || con.device.phase !== 'live') failed.push(`timeoutMs ${timeoutMs}: ${got}, device ${con.device.phase}`);
    sim.clearFaults();
    await con.close();
  }
  t.same(failed, [], 'every stop failed with E_STOP_TIMEOUT and left the device live (not asked to stop)');
});

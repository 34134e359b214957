// Found by a breaker (fixed: a stop while another is under way is refused at once, E_BAD_STATE, before it touches anything).
// two ConsoleDriver.stop() calls at once. The first drains the receive queues (waits up to
// CONSOLE_RECEIVE_QUIET_MS for an idle host), closes the ports and stops the device. The second,
// started while the first is still draining, passes the `phase === 'live'` check at its start and
// then sends PORT_OPEN 0 on the control transmit queue the first stop has paused: it hangs until
// something resumes the queues. `Promise.all([con.stop(), con.stop()])` never settles; and when the
// user does reinit() (after the first stop alone), the held second stop goes on and stops the
// freshly re-initialised device again. Expected: the second stop settles promptly (resolves with
// the first's mechanism, or rejects E_BAD_STATE), and never acts after a later reinit.

import t from 'tap';
import { bringUp, until } from '../support/console.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const settled = (p: Promise<unknown>): Promise<string> => p.then((v) => `resolved ${String(v)}`, (e: { code?: string }) => `rejected ${String(e.code)}`);

for (const gap of [0, 20]) {
  t.test(`two stops ${gap} ms apart on an idle host: both settle, and the second does not stop the device after a reinit`, async (t) => {
    const { sim, con } = await bringUp(t, { ports: 2, loopback: false });
    await con.waitForPort(1);
    await until(() => sim.port(1)!.guestOpen);
    const first = settled(con.stop({ mechanism: 'quiesce' }));
    await sleep(gap);
    const second = settled(con.stop({ mechanism: 'quiesce' }));
    t.match(await first, /^resolved quiesce$/, 'the first stop resolves');
    const bound = sleep(2000).then(() => 'still pending 2 s after the first stop');
    t.not(await Promise.race([second, bound]), 'still pending 2 s after the first stop', 'the second stop settles (within its bound, before any reinit)');
    if (con.device.phase === 'stopped') await con.reinit(con.snapshot());
    await Promise.race([second, sleep(200)]);
    await sleep(20);
    t.equal(con.device.phase, 'live', 'the device is live after the reinit: no earlier stop() stopped it again');
  });
}

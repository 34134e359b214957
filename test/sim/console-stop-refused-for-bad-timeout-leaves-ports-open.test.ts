// Found by a breaker (fixed: timeoutMs is checked first, E_INVALID_ARGUMENT, nothing done).
// ConsoleDriver.stop() with a timeoutMs VirtioDevice.stop refuses (NaN, Infinity, a string,
// 0, -1) first pauses the receive queues, waits for the drain (50 ms with an idle host: NaN makes
// the drain's bound `now >= NaN`, never true), sends PORT_OPEN 0 to every port, and only then is
// refused E_INVALID_ARGUMENT — and re-opens the ports. The host sees its port closed and opened
// again by a call that was refused for its argument (on a staleReadMs / QEMU 7.2 device that
// window drops host bytes). Expected: an invalid argument is refused before anything is done —
// the host's port stays open and the refusal is immediate.

import t from 'tap';
import { bringUp, until } from '../support/console.js';

for (const bad of [Number.NaN, Infinity, 'soon', 0, -1]) {
  t.test(`stop({ timeoutMs: ${String(bad)} }) is refused at once without closing the ports`, async (t) => {
    const { sim, con } = await bringUp(t, { ports: 2, loopback: false });
    await con.waitForPort(1);
    const host = sim.port(1)!;
    await until(() => host.guestOpen);
    let closedSeen = false;
    const watch = setInterval(() => { if (!host.guestOpen) closedSeen = true; }, 0);
    const t0 = Date.now();
    await t.rejects(con.stop({ timeoutMs: bad as number }), { code: 'E_INVALID_ARGUMENT' });
    const took = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
    clearInterval(watch);
    t.notOk(closedSeen, 'the host never saw its port closed by the refused stop');
    t.ok(took < 20, `refused at once (took ${took} ms)`);
    t.equal(con.device.phase, 'live');
  });
}

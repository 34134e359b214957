// Found by a breaker (fixed: a mechanism the device lacks goes straight to the device stop, which refuses it before the ports are touched).
// ConsoleDriver.stop() is "refused at once, with nothing done" only for a bad timeoutMs
// or a concurrent stop. A stop the device can never do — a mechanism it does not offer
// (E_STATE_UNSUPPORTED, decided by VirtioDevice.stop from the negotiated features alone) or a name
// that is no mechanism — still runs the receive drain (receiveQuietMs with an idle host), sends
// PORT_OPEN 0 to every port, is then refused, and re-opens the ports: the host sees its port closed
// and opened by a call that did nothing (the very window in which, per stop()'s own rationale, a
// QEMU 7.2 / staleReadMs device drops the host's bytes). Expected: refused before the drain, the
// host's port never closed, the refusal immediate.

import t from 'tap';
import { bringUp, until } from '../support/console.js';

for (const mechanism of ['ring-state', 'suspend', 'bogus']) {
  t.test(`stop({ mechanism: '${mechanism}' }) on a device without it is refused at once without closing the ports`, async (t) => {
    const { sim, con } = await bringUp(t, { ports: 2, loopback: false });
    await con.waitForPort(1);
    const host = sim.port(1)!;
    await until(() => host.guestOpen);
    let closedSeen = false;
    const watch = setInterval(() => { if (!host.guestOpen) closedSeen = true; }, 0);
    const t0 = Date.now();
    const code = await con.stop({ mechanism: mechanism as 'suspend' }).then(() => 'no error', (e: { code?: string }) => e.code ?? 'untyped');
    const took = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
    clearInterval(watch);
    t.not(code, 'no error', `refused (${code})`);
    t.notOk(closedSeen, 'the host never saw its port closed by the refused stop');
    t.ok(took < 20, `refused at once (took ${took} ms)`);
    t.equal(con.device.phase, 'live');
  });
}

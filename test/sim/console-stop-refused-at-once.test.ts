// Found by two breakers (fixed: ConsoleDriver.stop() checks timeoutMs first, E_INVALID_ARGUMENT,
// and sends a mechanism the device lacks straight to the device's stop, E_STATE_UNSUPPORTED;
// nothing is done before either refusal).
// Before, a stop with a timeoutMs VirtioDevice.stop refuses (NaN, Infinity, a string, 0, -1), or
// with a mechanism the device does not offer (or no mechanism at all), first paused the receive
// queues, ran the receive drain (receiveQuietMs with an idle host; NaN made the drain's bound
// `now >= NaN`, never true), sent PORT_OPEN 0 to every port, was then refused, and re-opened the
// ports: the host saw its port closed and opened by a call that did nothing — the very window in
// which a QEMU 7.2 / staleReadMs device drops the host's bytes. Expected: refused before the drain,
// the host's port never closed. receiveQuietMs is 60 s here, so a drain that ran would take at
// least half the stop's 5 s bound: "at once" is told from that by a wide margin, not a tight time.

import t from 'tap';
import { bringUp, until } from '../support/console.js';
import type { ConsoleDriver } from '../../drivers/console/index.js';

/** Runs `stop` on a console whose port 1 the host has open; resolves with the error code (or 'no error'), whether the host saw its port close, and how long the call took. */
async function refusal(t: { teardown(fn: () => unknown): void }, stop: (con: ConsoleDriver) => Promise<unknown>) {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false }, { receiveQuietMs: 60_000 });
  await con.waitForPort(1);
  const host = sim.port(1)!;
  await until(() => host.guestOpen);
  let closedSeen = false;
  const watch = setInterval(() => { if (!host.guestOpen) closedSeen = true; }, 0);
  const t0 = Date.now();
  const code = await stop(con).then(() => 'no error', (e: { code?: string }) => e.code ?? 'untyped');
  const took = Date.now() - t0;
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(watch);
  return { code, closedSeen, took, phase: con.device.phase };
}

for (const bad of [Number.NaN, Infinity, 'soon', 0, -1]) {
  t.test(`stop({ timeoutMs: ${String(bad)} }) is refused at once without closing the ports`, async (t) => {
    const r = await refusal(t, (con) => con.stop({ timeoutMs: bad as number }));
    t.equal(r.code, 'E_INVALID_ARGUMENT');
    t.notOk(r.closedSeen, 'the host never saw its port closed by the refused stop');
    t.ok(r.took < 1000, `refused before any drain (took ${r.took} ms; a drain would take 2500)`);
    t.equal(r.phase, 'live');
  });
}

for (const mechanism of ['ring-state', 'suspend', 'bogus']) {
  t.test(`stop({ mechanism: '${mechanism}' }) on a device without it is refused at once without closing the ports`, async (t) => {
    const r = await refusal(t, (con) => con.stop({ mechanism: mechanism as 'suspend' }));
    t.not(r.code, 'no error', `refused (${r.code})`);
    t.notOk(r.closedSeen, 'the host never saw its port closed by the refused stop');
    t.ok(r.took < 1000, `refused before any drain (took ${r.took} ms; a drain would take 2500)`);
    t.equal(r.phase, 'live');
  });
}

// Found by a breaker (fixed: a stop of a device that failed rejects with its failure, E_DEVICE_NEEDS_RESET, in VirtioDevice.stop itself).
// the device sets DEVICE_NEEDS_RESET while ConsoleDriver.stop() is in its receive drain
// (which now lasts CONSOLE_RECEIVE_QUIET_MS with an idle host). The drain ends, PORT_OPEN 0 goes,
// and VirtioDevice.stop is then called on a device that is no longer live: the stop rejects with
// UsageError E_BAD_STATE ("cannot stop while the device is needs-reset"), the code of a caller's
// mistake. Expected: the device's failure (E_DEVICE_NEEDS_RESET), as QueueSet.stop documents and
// as a failure during VirtioDevice.stop itself is reported, so a caller knows to recover().

import t from 'tap';
import { bringUp, until } from '../support/console.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a device failure during the stop\'s receive drain rejects the stop with the failure\'s code', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false });
  await con.waitForPort(1);
  await until(() => sim.port(1)!.guestOpen);
  const stopping = con.stop({ mechanism: 'quiesce' });
  await sleep(10);
  sim.injectFault({ kind: 'needs-reset' });
  await t.rejects(stopping, { code: 'E_DEVICE_NEEDS_RESET' });
  await con.recover();
  t.equal(con.device.phase, 'live');
});

// close() while a console stop's preparation (the receive drain, held by a host sending every 10 ms
// and a 60 s receiveQuietMs) runs: the stop ends E_CLOSED as 9acbde1 says, but afterwards the
// device's configuration still "works": config.read8 returns 0, config.write8 and
// emergencyWrite succeed and the bytes go nowhere. Every call on a closed device should refuse
// with E_CLOSED (as stop/resume/recover/snapshot/vqState/waitForPort do). Breaker 25b.

import t from 'tap';
import { bringUp, until } from '../support/console.js';
import { UvirtioError } from '../../lib/errors.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function outcome(call: () => unknown): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<string>((r) => (timer = setTimeout(() => r('HANG'), 5000)));
  try {
    return await Promise.race([Promise.resolve().then(call).then(() => 'ok', (e: unknown) => (e instanceof UvirtioError ? e.code : `foreign ${String(e)}`)), hang]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('close() during a console stop\'s drain, then every call is E_CLOSED', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false, state: { suspend: true } }, { receiveQuietMs: 60_000 });
  const port = await con.waitForPort(1);
  port.on('data', () => undefined);
  port.on('error', () => undefined);
  await until(() => sim.port(1)!.guestOpen);
  let on = true;
  const host = (async () => {
    while (on) {
      sim.port(1)!.send('x');
      await sleep(10);
    }
  })();
  const stopping = outcome(() => con.stop({ timeoutMs: 60_000 }));
  await sleep(100);
  t.equal(await outcome(() => con.close()), 'ok', 'close() completes');
  t.equal(await stopping, 'E_CLOSED', 'the stop under way ends E_CLOSED');
  on = false;
  await host;
  const calls: Record<string, () => unknown> = {
    stop: () => con.stop(),
    resume: () => con.resume(),
    recover: () => con.recover(),
    snapshot: () => con.snapshot(),
    waitForPort: () => con.waitForPort(1, 100),
    'device.vqState': () => con.device.vqState(0),
    'device.config.read8': () => con.device.config.read8(0),
    'device.config.write8': () => con.device.config.write8(0, 1),
    emergencyWrite: () => con.emergencyWrite('lost'),
  };
  const wrong: string[] = [];
  for (const [name, call] of Object.entries(calls)) {
    const got = await outcome(call);
    if (got !== 'E_CLOSED') wrong.push(`${name}: ${got}`);
  }
  t.same(wrong, [], 'every call on the closed console refuses with E_CLOSED');
});

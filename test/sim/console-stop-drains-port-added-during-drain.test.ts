// Found by a breaker (fixed: the drain pauses every port receive queue, live or not, and asks which ports the host has open each time).
// ConsoleDriver.stop()'s receive drain pauses and waits for the receive queues of the
// ports live when it starts. A port the device adds during the drain (DEVICE_ADD) is set up as
// usual — receive buffers posted, PORT_OPEN 1 — but its queue is neither paused nor waited for, and
// step 2 then sends it PORT_OPEN 0 with its buffers posted and freshly sized by the device: on a
// staleReadMs device (the reference console's model of QEMU 7.2) the host's next bytes on that
// port are read and dropped — exactly the loss the drain exists to prevent. Here staleReadMs (100)
// is below receiveQuietMs (200), the configuration stop() documents as lossless. Expected: every
// byte the host sends on the new port arrives once (the drain covers the ports there when it closes
// them, or the added port is not opened before the stop ends).

import t from 'tap';
import { bringUp, pattern, readN, until } from '../support/console.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a port the device adds during stop()\'s receive drain loses none of the host\'s bytes across the stop', async (t) => {
  const { sim, con } = await bringUp(t, { ports: 2, loopback: false, staleReadMs: 100 }, { receiveQuietMs: 200 });
  await con.waitForPort(1);
  await until(() => sim.port(1)!.guestOpen);
  const stopping = con.stop({ mechanism: 'quiesce' }); // an idle host: the drain lasts receiveQuietMs
  await sleep(150);
  const host = sim.addPort({ id: 2 });
  const port = await con.waitForPort(2, 1000);
  const data = pattern(3000, 9);
  const reading = Promise.race([readN(port, data.length), sleep(2000).then(() => undefined)]);
  t.equal(await stopping, 'quiesce');
  host.send(data); // the host writes to its new port while the guest is stopped
  await sleep(10);
  await con.reinit(con.snapshot());
  const got = await reading;
  t.equal(host.dropped, 0, 'the device dropped none of the host\'s bytes');
  t.ok(got?.equals(data), `every byte once (got ${got ? got.length : 'fewer than'} of ${data.length})`);
});

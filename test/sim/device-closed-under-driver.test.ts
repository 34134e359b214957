// Found by a breaker (fixed: VirtioDevice.onClose tells the QueueSet, which rejects what was in
// flight with E_CLOSED as its own close() would). What it was:
// Closing a driver's VirtioDevice (net.device.close(), e.g. from an onFrame or onFailure listener)
// instead of the driver strands the driver's requests for good: VirtioDevice.close() resets the
// device, takes the tokens of every chain in flight and returns them "for their owners to reject"
// — to its caller, not to the QueueSet that owns them, which is never told. The driver's send()
// promises never settle, and a later net.close() does not settle them either (QueueSet.close calls
// device.close() again, which is idempotent and returns nothing). Either the QueueSet must hear of
// the close (and reject with E_CLOSED), or VirtioDevice.close() must refuse while a driver owns it.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<string> => new Promise((r) => setTimeout(() => r('never settled'), ms));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: sends in flight settle when the driver's device is closed under it`, async (t) => {
    const sim = createSimDevice({ type: 'net' });
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, rxBuffers: 4 });
    t.teardown(() => net.close());
    sim.injectFault({ kind: 'completion-silence', queue: 1 }); // the transmit queue holds the sends
    const sends = [0, 1].map((i) => net.send(new Uint8Array(60).fill(i)).then(() => 'sent', (e: { code?: string }) => e.code ?? 'error'));
    await new Promise((r) => setTimeout(r, 10));
    await net.device.close();
    t.same(await Promise.race([Promise.all(sends), sleep(1000)]), ['E_CLOSED', 'E_CLOSED'], 'settled after device.close()');
    await net.close();
    t.same(await Promise.race([Promise.all(sends), sleep(1000)]), ['E_CLOSED', 'E_CLOSED'], 'settled after net.close() at the latest');
  });
}

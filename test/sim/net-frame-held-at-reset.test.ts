// Found by a breaker (fixed: the reference NIC counts frames still waiting for a receive buffer at a
// reset in `dropped`; they are not virtqueue state, a snapshot does not carry them). What it was:
// A frame the device holds for want of receive buffers when the driver stops it is lost without a
// trace by stop → snapshot → reinit (quiesce, the reference device's default here): QueueSet.stop()
// pauses every queue first, so the receive buffers RxQueue posts again from its completion callback
// wait in the RequestQueue instead of reaching the device, the device cannot place the frame it
// already took from the transmit ring (send() resolved), and the reinit's reset empties the model's
// backlog (NetModel.reset: `backlog = backlog.map(() => [])`) without counting it in `dropped`.
// A frame listener that stops the driver (callbacks now run inside the used-ring pass, 8ecf1e2)
// makes the window deterministic; it also happens with stop() from outside (timing-dependent),
// and on the promise version before 8ecf1e2.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver } from '../../drivers/net/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}, MRG_RXBUF: a frame waiting in the device at stop() arrives after reinit, or is counted as dropped`, async (t) => {
    const sim = createSimDevice({ type: 'net', mergeable: true });
    // Five 500-byte frames over 128-byte buffers need 25 buffers; 16 are posted.
    const net = await NetDriver.open(new VirtioPciTransport(sim.fn), { layout, interrupts: 'poll', pollBudget: 1, rxBufferSize: 128, rxBuffers: 16, queueSize: 16 });
    t.teardown(() => net.close());
    const got: number[] = [];
    let stopped: Promise<unknown> | undefined;
    net.onFrame((f) => {
      got.push(new DataView(f.frame.buffer, f.frame.byteOffset).getUint32(0, true));
      stopped ??= net.stop();
    });
    const frames = [0, 1, 2, 3, 4].map((seq) => {
      const f = new Uint8Array(500).fill(seq);
      new DataView(f.buffer).setUint32(0, seq, true);
      return f;
    });
    await Promise.all(frames.map((f) => net.send(f)));
    for (let i = 0; i < 200 && !stopped; i++) await sleep(1);
    await stopped;
    await net.reinit(net.snapshot());
    for (let i = 0; i < 200 && got.length + sim.dropped < frames.length; i++) await sleep(2);
    t.equal(got.length + sim.dropped, frames.length, `every frame sent arrived or was counted as dropped (arrived ${JSON.stringify(got)}, dropped ${sim.dropped})`);
  });
}

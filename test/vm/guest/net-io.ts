// Runs inside the test VM: the two virtio-net functions (scripts/vm/qemu.mjs joins them on one
// QEMU hub, so what one sends the other receives) driven by NetDriver over vfio: addresses:
//   traffic     both directions at once, every frame received exactly once and intact
//   mechanisms  QEMU 7.2 offers neither RING_STATE nor SUSPEND: quiesce only, the others refused
//   reinit      stop(quiesce) / snapshot (through JSON) / reinit of the sending NIC mid-stream,
//               then of the receiving NIC mid-stream
//   reopen      close (reset) and open again, then traffic both ways
// The host side is test/vm/net.test.ts.

import { NetDriver } from '../../../drivers/net/index.js';
import { openTransport } from '../../../lib/open.js';
import { parseSnapshot } from '../../../lib/virtio/snapshot/index.js';
import { Receiver, sendStream, waitFor } from './net-frames.js';
import { expectErrorAsync, report, step } from './report.js';

const A = 'vfio:0000:03:00.0'; // split ring
const B = 'vfio:0000:04:00.0'; // packed ring
const N = 300;
const macText = (m: Uint8Array): string => [...m].map((b) => b.toString(16).padStart(2, '0')).join(':');

async function openNic(address: string): Promise<{ net: NetDriver; rx: Receiver }> {
  const dev = await openTransport(address);
  const net = await NetDriver.open(dev.transport, { layout: 'auto' });
  return { net, rx: new Receiver(net) };
}

function describe(address: string, net: NetDriver): Record<string, unknown> {
  return { address, mac: macText(net.mac), layout: net.device.layout, interrupts: net.device.interruptMode, linkUp: net.linkUp };
}

/** A stop / snapshot (written out and parsed back, as a file would be) / reinit of one NIC. */
async function cycle(net: NetDriver): Promise<Record<string, unknown>> {
  const mechanism = await net.stop({ mechanism: 'auto' });
  const snap = parseSnapshot(JSON.stringify(net.snapshot()));
  await net.reinit(snap);
  return { mechanism, snapshotMechanism: snap.mechanism, queues: snap.queues.length, txInFlightAtSnapshot: snap.queues[1]?.inFlight, state: net.device.phase };
}

async function main(): Promise<void> {
  let a = await openNic(A);
  const b = await openNic(B);
  report('open', { a: describe(A, a.net), b: describe(B, b.net) });

  await step('traffic', async () => {
    await Promise.all([sendStream(a.net, b.net.mac, 1, N), sendStream(b.net, a.net.mac, 2, N)]);
    await waitFor(() => b.rx.received(1) >= N && a.rx.received(2) >= N, 15_000);
    return { aToB: b.rx.verdict(1, N), bToA: a.rx.verdict(2, N), corrupted: a.rx.corrupted + b.rx.corrupted };
  });

  await step('mechanisms', () => ({ a: a.net.device.mechanisms(), b: b.net.device.mechanisms() }));
  for (const m of ['ring-state', 'suspend'] as const) {
    await expectErrorAsync(`stop-${m}`, () => a.net.stop({ mechanism: m }), { mechanism: m });
  }
  await step('still-live', () => ({ state: a.net.device.phase }));

  // The sender is stopped with frames in flight, its state saved and restored; the peer must get
  // every frame once.
  for (const [name, from, to, stream] of [['a', a, b, 3], ['b', b, a, 4]] as const) {
    await step('reinit-sender', async () => {
      let info: Record<string, unknown> = {};
      await sendStream(from.net, to.net.mac, stream, N, { between: async (i) => { if (i === N / 3) info = await cycle(from.net); } });
      await waitFor(() => to.rx.received(stream) >= N, 15_000);
      return { nic: name, ...info, verdict: to.rx.verdict(stream, N), corrupted: to.rx.corrupted };
    });
  }

  // The receiver is stopped and reinitialised while its peer keeps sending. Quiesce cannot hold
  // the wire: a frame that lands between the stop and the reset is gone (as on a real NIC). It
  // must never arrive twice or damaged, and traffic must flow again afterwards.
  await step('reinit-receiver', async () => {
    let info: Record<string, unknown> = {};
    await sendStream(a.net, b.net.mac, 5, N, { window: 4, between: async (i) => { if (i === N / 3) info = await cycle(b.net); } });
    await waitFor(() => b.rx.received(5) >= N, 3_000);
    await sendStream(a.net, b.net.mac, 6, 50);
    await waitFor(() => b.rx.received(6) >= 50, 15_000);
    return { ...info, verdict: b.rx.verdict(5, N), after: b.rx.verdict(6, 50), corrupted: b.rx.corrupted };
  });

  await step('reopen', async () => {
    const mac = macText(a.net.mac);
    await a.net.close(); // resets the device and releases the function
    a = await openNic(A);
    await Promise.all([sendStream(a.net, b.net.mac, 7, 100), sendStream(b.net, a.net.mac, 8, 100)]);
    await waitFor(() => b.rx.received(7) >= 100 && a.rx.received(8) >= 100, 15_000);
    return { sameMac: macText(a.net.mac) === mac, aToB: b.rx.verdict(7, 100), bToA: a.rx.verdict(8, 100), corrupted: a.rx.corrupted + b.rx.corrupted };
  });

  await a.net.close();
  await b.net.close();
  report('done', { foreign: a.rx.foreign + b.rx.foreign });
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

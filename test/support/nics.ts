// Two reference NICs joined by a cable (A 02:..:0a receives, B 02:..:0b sends) with NetDriver on
// each, a sequence-numbered frame builder, and a bounded wait: for the net tests that need a peer.

import { createSimDevice, type SimNetDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver, type NetOpenOptions, type ReceivedFrame } from '../../drivers/net/index.js';

/** A 64-byte frame from B to the NIC whose MAC ends in `dst`, carrying `seq` at byte 14. */
export function seqFrame(dst: number, seq: number): Uint8Array {
  const f = new Uint8Array(64);
  f.set([2, 0, 0, 0, 0, dst], 0);
  f.set([2, 0, 0, 0, 0, 0xb], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = seq;
  return f;
}

/** Waits until `done()` or `ms` pass (every 2 ms). */
export async function until(done: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
}

/** Opens A and B (closed at the test's teardown); `seen` collects the sequence numbers A receives. */
export async function joinedNics(t: { teardown(fn: () => unknown): void }, options: NetOpenOptions = {}): Promise<{
  a: SimNetDevice; b: SimNetDevice; na: NetDriver; nb: NetDriver; seen: number[];
}> {
  const a = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0a' });
  const b = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0b', peer: a });
  const na = await NetDriver.open(new VirtioPciTransport(a.fn), options);
  const nb = await NetDriver.open(new VirtioPciTransport(b.fn), options);
  t.teardown(async () => {
    await na.close();
    await nb.close();
  });
  const seen: number[] = [];
  na.onFrame((f: ReceivedFrame) => seen.push(f.frame[14]!));
  return { a, b, na, nb, seen };
}

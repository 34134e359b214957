// An idle NIC is not nudged: a receive queue always has buffers in flight and stillness is its
// normal state, so the watchdog neither nudges nor times it (watchdog.ts). Before this, every idle
// NIC got a spurious available-buffer notification per second per receive queue (a VM exit each on
// VFIO), and NetDriver.nudges — which counts a device that missed a notification — climbed on a
// healthy device. (Found by a fresh attempt to break the nudge.)

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { NetDriver, type ReceivedFrame } from '../../drivers/net/index.js';

const frame = (dst: number, seq: number): Uint8Array => {
  const f = new Uint8Array(64);
  f.set([2, 0, 0, 0, 0, dst], 0);
  f.set([2, 0, 0, 0, 0, 0xb], 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = seq;
  return f;
};

for (const layout of ['split', 'packed'] as const) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`${layout}, ${interrupts}: an idle, healthy NIC is not nudged`, async (t) => {
      const a = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0a' });
      const b = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0b', peer: a });
      const na = await NetDriver.open(new VirtioPciTransport(a.fn), { layout, interrupts });
      const nb = await NetDriver.open(new VirtioPciTransport(b.fn), { layout, interrupts });
      t.teardown(async () => {
        await na.close();
        await nb.close();
      });
      const seen: number[] = [];
      na.onFrame((f: ReceivedFrame) => seen.push(f.frame[14]!));
      for (let i = 0; i < 5; i++) await nb.send(frame(0xa, i));
      // Idle for 2.5 s: nothing is lost, nothing is waiting for a notification.
      await new Promise((r) => setTimeout(r, 2500));
      t.same(seen, [0, 1, 2, 3, 4], 'every frame arrived once, at once');
      t.same(a.violations, []);
      t.equal(na.nudges, 0, `receiver nudged ${na.nudges} time(s) while idle`);
      t.equal(nb.nudges, 0, `sender nudged ${nb.nudges} time(s) while idle`);
    });
  }
}

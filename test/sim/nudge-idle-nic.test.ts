// An idle NIC is not nudged: a receive queue always has buffers in flight and stillness is its
// normal state, so the watchdog neither nudges nor times it (watchdog.ts). Before this, every idle
// NIC got a spurious available-buffer notification per second per receive queue (a VM exit each on
// VFIO), and NetDriver.nudges — which counts a device that missed a notification — climbed on a
// healthy device. (Found by a fresh attempt to break the nudge.)

import t from 'tap';
import { joinedNics, seqFrame as frame } from '../support/nics.js';

for (const layout of ['split', 'packed'] as const) {
  for (const interrupts of ['auto', 'poll'] as const) {
    t.test(`${layout}, ${interrupts}: an idle, healthy NIC is not nudged`, async (t) => {
      const { a, na, nb, seen } = await joinedNics(t, { layout, interrupts });
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

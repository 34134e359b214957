// The driver knows its own rings. Queue state that a device reports (the proposal's state
// registers, a back-end's GET_VRING_BASE) or that a snapshot file carries must agree with that
// knowledge before it is used: a device or a file that lies would otherwise make a reinit skip
// requests (lost) or replay them (done twice).
//
// What must hold once the device is stopped and the driver has taken every used element:
//   used state  = where the driver will read the next used element (it consumed exactly that far);
//   avail state lies between the used state and what the driver made available: the device cannot
//               have fetched more than it was given, nor less than it completed.
// Split indices are free-running modulo 2^16 (virtio 1.2 §2.7); packed states are a slot index
// plus a wrap counter (docs/provisional-registers.md#state-encoding), compared as positions modulo 2 × size (§2.8.1).

import { unpackPackedState } from '../../spec/index.js';
import type { Layout } from '../queue/types.js';
import type { VqState } from '../../transport/types.js';

/** The driver's side of one queue at the stop: what it made available and consumed. */
export interface DriverView {
  layout: Layout;
  size: number;
  /** Split: avail->idx published. Packed: next slot to fill + wrap counter (encoded). */
  nextAvail: number;
  /** Split: used index consumed up to. Packed: next used slot + wrap counter (encoded). */
  lastUsed: number;
  /** Chains made available and not returned. */
  inFlight: number;
}

/** Positions on the ring, and the distance from one to another, in the layout's modulus. */
function ring(view: DriverView): { pos(s: number): number | null; dist(a: number, b: number): number; show(s: number): string } {
  if (view.layout === 'split') {
    return { pos: (s) => s & 0xffff, dist: (a, b) => (b - a) & 0xffff, show: (s) => String(s) };
  }
  const n = view.size;
  return {
    pos: (s) => {
      const { index, wrap } = unpackPackedState(s);
      return index >= n ? null : index + (wrap ? 0 : n);
    },
    dist: (a, b) => (b - a + 2 * n) % (2 * n),
    show: (s) => {
      const { index, wrap } = unpackPackedState(s);
      return `${index} (wrap ${Number(wrap)})`;
    },
  };
}

/** How strictly a state is judged: see queueStateProblem. */
export interface StateRules {
  /** The state must be the driver's own (mechanisms whose state is read from the rings: suspend, quiesce). */
  exact?: boolean;
  /**
   * The device may hold fetched, unfinished requests at the stop (ring-state with DEVICE_STATE,
   * which hands them over). Without it a stopped device has finished all it fetched: avail = used.
   */
  mayHold?: boolean;
}

/** Why `state` cannot be this queue's state after a stop (null when it can). */
export function queueStateProblem(view: DriverView, state: VqState, rules: StateRules = {}): string | null {
  const r = ring(view);
  const used = r.pos(state.used);
  const avail = r.pos(state.avail);
  const lastUsed = r.pos(view.lastUsed)!;
  const nextAvail = r.pos(view.nextAvail)!;
  if (used === null || avail === null) return `state (avail ${r.show(state.avail)}, used ${r.show(state.used)}) names a slot beyond the ${view.size}-entry ring`;
  if (used !== lastUsed) {
    return `used state ${r.show(state.used)} is not where the driver consumed up to (${r.show(view.lastUsed)})`;
  }
  const given = r.dist(lastUsed, nextAvail);
  const fetched = r.dist(used, avail);
  if (fetched > given) {
    return `avail state ${r.show(state.avail)} is ${fetched} past the used state, but the driver made only ${given} available (up to ${r.show(view.nextAvail)})`;
  }
  if (rules.exact && avail !== nextAvail) {
    return `avail state ${r.show(state.avail)} is not the driver's next available position ${r.show(view.nextAvail)}`;
  }
  if (!rules.exact && !rules.mayHold && fetched !== 0) {
    return `avail state ${r.show(state.avail)} says ${fetched} fetched request(s) are unfinished, but the device has no way to hand them over (no DEVICE_STATE)`;
  }
  return null;
}

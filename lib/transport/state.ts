// Stop / virtqueue state / reinit: the facility interface each mechanism implements
// (docs/architecture.md#state-facilities; docs/provisional-registers.md), in order of preference:
//   ring-state  the proposal: STOP status bit (one-way) + per-queue avail/used state registers,
//               optionally the DEVICE_STATE mailbox for extra device state (pci/state.ts)
//   backend     the back-end stops each ring and reports its state (vhost-user GET_VRING_BASE);
//               a reinit sets it with SET_VRING_BASE on a fresh connection (vhost-user/state.ts)
//   suspend     virtio 1.4 SUSPEND (two-way); state derived from the rings; no state registers,
//               so a reinit restarts the rings at 0 (pci/state.ts)
//   quiesce     no device support: wait until nothing is in flight (lib/virtio/state/quiesce.ts)
// A transport supplies the facilities its device has (VirtioTransport.stateFacilities); the core
// adds quiesce. This file has only shapes, so that both sides can name them.

import type { Layout } from '../spec/ring.js';
import type { UvirtioError } from '../errors.js';

/**
 * How a device's virtqueue state was obtained (docs/architecture.md#state-facilities):
 * - `ring-state`: the proposal's STOP bit and state registers (docs/provisional-registers.md);
 * - `suspend`: virtio 1.4 SUSPEND (§2.1.1 / §3.4), state derived from the rings in memory;
 * - `backend`: vhost-user GET_VRING_BASE / SET_VRING_BASE;
 * - `quiesce`: no device support; the driver drained every request, then reset.
 */
export type Mechanism = 'ring-state' | 'suspend' | 'quiesce' | 'backend';

/** One queue's state in the provisional encoding (docs/provisional-registers.md): split 16-bit indices; packed index|wrap<<15. */
export interface VqState {
  /** Split: the next available index the device will read. Packed: slot index | wrap counter << 15. */
  avail: number;
  /** Split: the next used index the device will write. Packed: slot index | wrap counter << 15. */
  used: number;
}

/**
 * A split ring's two indices in ring memory (virtio 1.2 §2.7.6 avail->idx, §2.7.8 used->idx), as
 * the virtqueue that owns the memory reads and writes them (lib/virtio/queue/split.ts).
 */
export interface SplitRingIndices {
  /** avail->idx: what the driver published. */
  availIdx(): number;
  /** used->idx: what the device has returned. */
  usedIdx(): number;
  /** Writes used->idx (a restored state, read by a back-end when its ring starts). */
  setUsedIdx(value: number): void;
}

/** What a facility sees of the driver while it stops the device (supplied by VirtioDevice). */
export interface StateContext {
  /** For messages. */
  readonly address: string;
  /** The negotiated ring layout (split or packed), which decides how queue indices are encoded. */
  readonly layout: Layout;
  /** The queues set up, ascending. */
  readonly queues: readonly number[];
  /** Chains queue q has made available and not had back. */
  inFlight(q: number): number;
  /** Whether queue q's chains complete by themselves (blk, tx) or wait on outside events (net rx). */
  drains(q: number): boolean;
  /** The state the driver's own ring shows for queue q: its next available and last used positions. */
  ringDerived(q: number): VqState;
  /** Non-null once the device failed (it was reset meanwhile): a wait ends with this error. */
  failure(): UvirtioError | null;
}

/**
 * The DEVICE_STATE mailbox of the proposal (docs/provisional-registers.md): the device's extra state, opaque.
 * Errors: E_STATE_REFUSED with the device's reason.
 */
export interface DeviceStateMailbox {
  /** Bytes the device would SAVE now (0: none). */
  length(): number;
  /** SAVE (while STOP shows): the device writes its extra state at `iova`; returns its length. */
  save(iova: bigint, capacity: number): number;
  /** LOAD (between FEATURES_OK and DRIVER_OK): the device reads `length` bytes from `iova`. */
  load(iova: bigint, length: number): void;
}

/** One stop/state mechanism: it can stop the device, read each queue's state, and restore it. */
export interface StateFacility {
  /** Which mechanism this is (ring-state, suspend, backend, quiesce); reported by stop() and in snapshots. */
  readonly mechanism: Mechanism;
  /**
   * Whether a reinit restores the device's indices (true: ring-state, backend) or restarts every
   * ring at 0 and makes the chains the device never fetched available again (suspend, quiesce).
   */
  readonly restoresIndices: boolean;
  /** Whether the state it reads is derived from the driver's rings (suspend, quiesce) rather than reported by the device. */
  readonly ringDerived: boolean;
  /**
   * Brings the device to a quiet, stopped state; bounded by timeoutMs. Rejects E_STOP_TIMEOUT /
   * E_SUSPEND_TIMEOUT, E_DEVICE_NEEDS_RESET, or the failure ctx reports.
   */
  stop(ctx: StateContext, timeoutMs: number): Promise<void>;
  /** Queue q's state while stopped. Throws E_STATE_NOT_STOPPED where the device has not reported it. */
  read(ctx: StateContext, q: number): VqState;
  /**
   * Sets queue q's state for the next start (between configureQueue and DRIVER_OK): the state
   * registers (ring-state), SET_VRING_BASE (backend); nothing where the rings restart at 0.
   */
  restore(q: number, state: VqState): void;
  /** Leaves the stopped state without a reset, where the mechanism allows it (suspend, quiesce). */
  resume?(ctx: StateContext, timeoutMs: number): Promise<void>;
  /** The DEVICE_STATE mailbox, when the device has one (ring-state with DEVICE_STATE). */
  readonly deviceState?: DeviceStateMailbox;
}

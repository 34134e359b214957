// Stop / virtqueue state / reinit: one StateFacility per mechanism (ARCHITECTURE.md, in order of
// preference):
//   ring-state  the proposal: STOP status bit (one-way) + per-queue avail/used state registers
//               (SPEC-NOTES §1), optionally the DEVICE_STATE mailbox for extra device state
//   suspend     virtio 1.4 SUSPEND (two-way); state read from the rings; no state registers, so a
//               reinit restarts the rings at 0 and makes the unfetched chains available again
//   quiesce     no device support: stop submitting, wait until nothing is in flight, and on reinit
//               reset and restart at index 0 — lossless only because the driver drained first
//   backend     the back-end stops each ring and reports its state (vhost-user GET_VRING_BASE);
//               reinit sets it with SET_VRING_BASE on a fresh connection

import { Status, PACKED_STATE_WRAP } from '../spec/index.js';
import { DeviceError, TimeoutError, type UvirtioError } from '../errors.js';
import type { Mechanism } from './snapshot/index.js';
import type { Layout, Virtqueue } from './queue/types.js';
import type { BackendStateAccess, RingStateAccess, VirtioTransport, VqState } from '../transport/types.js';
import { backoff } from '../util/backoff.js';

export interface StateContext {
  transport: VirtioTransport;
  layout: Layout;
  queues: ReadonlyMap<number, Virtqueue<unknown>>;
  /** Queues whose chains complete by themselves (blk, tx); others (net rx) are reclaimed, not drained. */
  drains: (q: number) => boolean;
  /** Non-null once the device failed (it was reset meanwhile): a wait on it ends with this error. */
  failure: () => UvirtioError | null;
}

export interface StateFacility {
  readonly mechanism: Mechanism;
  /** Brings the device to a quiet, stopped state; bounded by timeoutMs. */
  stop(ctx: StateContext, timeoutMs: number): Promise<void>;
  /** The queue's state while stopped. */
  vqState(ctx: StateContext, q: number): VqState;
  /** Whether reinit restores the device's indices (true) or restarts the rings at 0 (false). */
  readonly restoresIndices: boolean;
  /** Leaves the stopped state without a reset, where the mechanism allows it. */
  resume?(ctx: StateContext, timeoutMs: number): Promise<void>;
}

/** The initial state written on a fresh start (split 0/0; packed index 0 with wrap counters 1). */
export function initialVqState(layout: Layout): VqState {
  return layout === 'split' ? { avail: 0, used: 0 } : { avail: PACKED_STATE_WRAP, used: PACKED_STATE_WRAP };
}

async function waitForStatus(ctx: StateContext, done: (s: number) => boolean, timeoutMs: number, what: 'STOP' | 'SUSPEND' | 'resume'): Promise<void> {
  const t = ctx.transport;
  const deadline = Date.now() + timeoutMs;
  for (let spins = 0; ; spins++) {
    const failed = ctx.failure();
    if (failed) throw failed;
    const s = t.readStatus();
    if (s & Status.DEVICE_NEEDS_RESET) {
      throw new DeviceError('E_DEVICE_NEEDS_RESET', `${t.address} set DEVICE_NEEDS_RESET while waiting for ${what}`,
        'the device failed while stopping; reset it (its queue state is lost)');
    }
    if (done(s)) return;
    if (Date.now() > deadline) {
      const code = what === 'STOP' ? 'E_STOP_TIMEOUT' : 'E_SUSPEND_TIMEOUT';
      throw new TimeoutError(code, `${t.address}: ${what} did not show in device_status within ${timeoutMs} ms (status 0x${s.toString(16)})`,
        'the device may still be finishing requests; retry with a longer timeout, or reset it');
    }
    await backoff(spins);
  }
}

export function ringStateFacility(access: RingStateAccess): StateFacility {
  return {
    mechanism: 'ring-state',
    restoresIndices: true,
    async stop(ctx, timeoutMs) {
      // The proposal: set STOP (never cleared by the driver), then poll until the device shows it.
      const t = ctx.transport;
      t.writeStatus(t.readStatus() | Status.STOP);
      await waitForStatus(ctx, (s) => (s & Status.STOP) !== 0, timeoutMs, 'STOP');
    },
    vqState(_ctx, q) {
      return access.readVqState(q);
    },
  };
}

/**
 * virtio 1.4 SUSPEND: the device, once quiet, shows SUSPEND and clears DRIVER_OK; the driver
 * resumes by writing DRIVER_OK and waits for SUSPEND to clear (SPEC-NOTES §2). A suspended device
 * has finished everything it fetched, so a split ring's next available index equals used->idx.
 */
export function suspendFacility(): StateFacility {
  return {
    mechanism: 'suspend',
    restoresIndices: false,
    async stop(ctx, timeoutMs) {
      const t = ctx.transport;
      t.writeStatus(t.readStatus() | Status.SUSPEND);
      await waitForStatus(ctx, (s) => (s & Status.SUSPEND) !== 0 && (s & Status.DRIVER_OK) === 0, timeoutMs, 'SUSPEND');
    },
    vqState(ctx, q) {
      return ringDerivedState(ctx, q);
    },
    async resume(ctx, timeoutMs) {
      const t = ctx.transport;
      t.writeStatus((t.readStatus() & ~Status.SUSPEND) | Status.DRIVER_OK);
      await waitForStatus(ctx, (s) => (s & Status.SUSPEND) === 0, timeoutMs, 'resume');
    },
  };
}

/** The back-end stops each ring (in queue order) and hands back its state. */
export function backendFacility(access: BackendStateAccess): StateFacility {
  const states = new Map<number, VqState>();
  return {
    mechanism: 'backend',
    restoresIndices: true,
    async stop(ctx) {
      states.clear();
      for (const q of [...ctx.queues.keys()].sort((a, b) => a - b)) states.set(q, await access.stopQueue(q));
    },
    vqState(ctx, q) {
      return states.get(q) ?? initialVqState(ctx.layout);
    },
  };
}

/** No device support: wait until every draining queue has nothing in flight. */
export function quiesceFacility(): StateFacility {
  return {
    mechanism: 'quiesce',
    restoresIndices: false,
    async stop(ctx, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (let spins = 0; ; spins++) {
        const failed = ctx.failure();
        if (failed) throw failed;
        const busy = [...ctx.queues].filter(([q, vq]) => ctx.drains(q) && vq.inFlight > 0);
        if (busy.length === 0) return;
        if (Date.now() > deadline) {
          throw new TimeoutError('E_STOP_TIMEOUT',
            `${ctx.transport.address}: quiesce waited ${timeoutMs} ms and ${busy.map(([q, vq]) => `queue ${q} still has ${vq.inFlight}`).join(', ')} in flight`,
            'the device is not completing requests; a quiesce cannot be lossless without them');
        }
        await backoff(spins);
      }
    },
    vqState(ctx, q) {
      return ringDerivedState(ctx, q);
    },
    async resume() {
      // The device never stopped; the driver simply submits again.
    },
  };
}

/** What the rings say while the device is quiet: the driver's published index and what it consumed. */
function ringDerivedState(ctx: StateContext, q: number): VqState {
  const vq = ctx.queues.get(q);
  if (!vq) return initialVqState(ctx.layout);
  const s = vq.exportState();
  return { avail: s.nextAvail, used: s.lastUsed };
}

export function facilityFor(mechanism: Mechanism, transport: VirtioTransport): StateFacility {
  switch (mechanism) {
    case 'ring-state':
      if (!transport.ringState) throw new DeviceError('E_STATE_UNSUPPORTED', `${transport.address} has no virtqueue state registers`);
      return ringStateFacility(transport.ringState);
    case 'suspend':
      return suspendFacility();
    case 'quiesce':
      return quiesceFacility();
    case 'backend':
      if (!transport.backendState) throw new DeviceError('E_STATE_UNSUPPORTED', `${transport.address}: the back-end mechanism needs a vhost-user transport`);
      return backendFacility(transport.backendState);
  }
}

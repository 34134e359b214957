// The stop/state facilities a virtio-pci device can offer (docs/provisional-registers.md):
//   ring-state  STOP in device_status (one-way; the driver never clears it), then the per-queue
//               avail/used state registers (readable while STOP shows, writable between
//               FEATURES_OK and DRIVER_OK), and with DEVICE_STATE the extra-state mailbox
//   suspend     virtio 1.4 SUSPEND: the device, once quiet, shows SUSPEND and clears DRIVER_OK; the
//               driver resumes by writing DRIVER_OK and waits for SUSPEND to clear. A suspended
//               device finished everything it fetched, so each queue's state is the driver's own.
// The register accesses (PROVISIONAL offsets, lib/spec) are the transport's: StateRegisters.

import { Status } from '../../spec/index.js';
import { DeviceError, TimeoutError } from '../../errors.js';
import { backoff } from '../../util/backoff.js';
import type { DeviceStateMailbox, StateContext, StateFacility, VqState } from '../state.js';

/** What the facilities need of the transport: device_status and, for ring-state, the state registers. */
export interface StatusAccess {
  /** For messages. */
  readonly address: string;
  /** device_status (virtio 1.2 §2.1). */
  readStatus(): number;
  /** Stores device_status. */
  writeStatus(status: number): void;
}

/** The proposal's per-queue state registers (docs/provisional-registers.md). */
export interface StateRegisters {
  /** Queue q's avail/used state registers (selects the queue). */
  readVqState(q: number): VqState;
  /** Writes queue q's avail/used state registers (selects the queue). */
  writeVqState(q: number, state: VqState): void;
}

/**
 * Polls device_status until `done` holds, bounded by timeoutMs. Rejects E_DEVICE_NEEDS_RESET,
 * E_STOP_TIMEOUT (STOP) or E_SUSPEND_TIMEOUT (SUSPEND, resume), or the failure ctx reports.
 */
async function waitForStatus(t: StatusAccess, ctx: StateContext, done: (s: number) => boolean, timeoutMs: number, what: 'STOP' | 'SUSPEND' | 'resume'): Promise<void> {
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

/**
 * ring-state (the proposal, docs/provisional-registers.md): set STOP and poll until the device shows it; read and
 * restore through the state registers; `mailbox` when DEVICE_STATE was negotiated.
 */
export function ringStateFacility(t: StatusAccess, regs: StateRegisters, mailbox?: DeviceStateMailbox): StateFacility {
  return {
    mechanism: 'ring-state',
    restoresIndices: true,
    ringDerived: false,
    async stop(ctx, timeoutMs) {
      t.writeStatus(t.readStatus() | Status.STOP);
      await waitForStatus(t, ctx, (s) => (s & Status.STOP) !== 0, timeoutMs, 'STOP');
    },
    read: (_ctx, q) => regs.readVqState(q),
    restore: (q, state) => regs.writeVqState(q, state),
    ...(mailbox ? { deviceState: mailbox } : {}),
  };
}

/** virtio 1.4 SUSPEND (docs/provisional-registers.md#other-stop-mechanisms): two-way; the state is the driver's own rings'. */
export function suspendFacility(t: StatusAccess): StateFacility {
  return {
    mechanism: 'suspend',
    restoresIndices: false,
    ringDerived: true,
    async stop(ctx, timeoutMs) {
      t.writeStatus(t.readStatus() | Status.SUSPEND);
      await waitForStatus(t, ctx, (s) => (s & Status.SUSPEND) !== 0 && (s & Status.DRIVER_OK) === 0, timeoutMs, 'SUSPEND');
    },
    read: (ctx, q) => ctx.ringDerived(q),
    restore: () => {
      // No state registers: the rings restart at index 0 (written by ring-state, if negotiated too).
    },
    async resume(ctx, timeoutMs) {
      t.writeStatus((t.readStatus() & ~Status.SUSPEND) | Status.DRIVER_OK);
      await waitForStatus(t, ctx, (s) => (s & Status.SUSPEND) === 0, timeoutMs, 'resume');
    },
  };
}

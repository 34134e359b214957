// The generic stop/state facility, for a device without any support (docs/architecture.md#state-facilities): quiesce —
// stop submitting (the caller paused its queues), wait until every draining queue has nothing in
// flight, and read each queue's state from the driver's own rings. A reinit resets the device and
// restarts the rings at index 0: lossless only because the driver drained first. Receive queues
// (drains: false) are not waited for; their buffers are made available again after the reinit.

import { PACKED_STATE_WRAP } from '../../spec/index.js';
import { TimeoutError } from '../../errors.js';
import { backoff } from '../../util/backoff.js';
import type { Layout } from '../queue/types.js';
import type { StateFacility, VqState } from '../../transport/types.js';

/** The state written on a fresh start (split 0/0; packed index 0 with wrap counters 1: docs/provisional-registers.md). */
export function initialVqState(layout: Layout): VqState {
  return layout === 'split' ? { avail: 0, used: 0 } : { avail: PACKED_STATE_WRAP, used: PACKED_STATE_WRAP };
}

/** The quiesce facility. stop() rejects E_STOP_TIMEOUT when requests stay in flight past timeoutMs. */
export function quiesceFacility(): StateFacility {
  return {
    mechanism: 'quiesce',
    restoresIndices: false,
    ringDerived: true,
    async stop(ctx, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (let spins = 0; ; spins++) {
        const failed = ctx.failure();
        if (failed) throw failed;
        const busy = ctx.queues.filter((q) => ctx.drains(q) && ctx.inFlight(q) > 0);
        if (busy.length === 0) return;
        if (Date.now() > deadline) {
          throw new TimeoutError('E_STOP_TIMEOUT',
            `${ctx.address}: quiesce waited ${timeoutMs} ms and ${busy.map((q) => `queue ${q} still has ${ctx.inFlight(q)}`).join(', ')} in flight`,
            'the device is not completing requests; a quiesce cannot be lossless without them');
        }
        await backoff(spins);
      }
    },
    read: (ctx, q) => ctx.ringDerived(q),
    restore: () => {
      // The rings restart at index 0; nothing to tell the device.
    },
    async resume() {
      // The device never stopped; the driver simply submits again.
    },
  };
}

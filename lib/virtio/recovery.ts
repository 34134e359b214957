// Bringing a failed device back (needs-reset → live): reset, the §3.1.1 sequence with the same
// features (device-core.ts initialise), every queue set up again in the same memory at index 0,
// DRIVER_OK. QueueSet (queue-set.ts) settles the requests of the failure and reposts receive
// buffers around it.

import type { UvirtioError } from '../errors.js';
import { initialise, markFailedStatus, type DeviceCore } from './device-core.js';
import { initialVqState } from './state/quiesce.js';

/**
 * See VirtioDevice.recover. Returns, by queue, the tokens of chains the restarted rings forgot.
 * Rejects (the device stays in needs-reset, reset) with E_BAD_STATE (not in needs-reset),
 * E_RESET_TIMEOUT, E_FEATURES_NOT_OK, E_CLOSED, or the transport's codes.
 */
export async function recover(d: DeviceCore, timeoutMs: number): Promise<Map<number, unknown[]>> {
  d.expectPhase('needs-reset', 'recover');
  const t = d.t;
  try {
    await initialise(t, timeoutMs, () => d.features);
    d.ensureOpen();
    d.reprogram((rec) => ({ state: initialVqState(d.layout), forgotten: rec.vq.reset() }));
    d.phase = 'features-ok';
    await d.driverOk();
    d.ensureOpen();
  } catch (e) {
    // Closed under it: what the reset, closed transport made initialise() throw (E_FEATURES_NOT_OK …) is not the reason.
    d.ensureOpen();
    d.phase = 'needs-reset';
    // Leave it reset; a device that would not reset in the first place is not waited for again.
    if ((e as UvirtioError).code !== 'E_RESET_TIMEOUT') await t.reset(timeoutMs).catch(() => markFailedStatus(t));
    throw e;
  }
  d.failure = null;
  return d.takeCarried();
}

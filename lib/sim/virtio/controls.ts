// The controls a test or the CLI has over the reference device (the SimDeviceHandle in lib/sim/common.ts offers them):
// make it misbehave (faults.ts), undo that, and ask the driver not to notify a queue (a polling
// device, virtio 1.2 §2.7.7 / §2.8.10 notification suppression from the device side).

import { DeviceError, UsageError } from '../../errors.js';
import { Isr } from '../../spec/index.js';
import type { SimVirtioDevice } from './device.js';
import { checkFault, isImmediate, type SimFault } from './faults.js';

/**
 * Misbehaves as faults.ts describes: immediate kinds (needs-reset, interrupt-storm) now, the
 * others from now on. Throws E_INVALID_ARGUMENT (UsageError) for a fault that does not fit the device.
 */
export function injectFault(device: SimVirtioDevice, fault: SimFault): void {
  const f = checkFault(fault, device.queues.length);
  if (!isImmediate(f.kind)) {
    device.faults.add(f);
    return;
  }
  if (f.kind === 'needs-reset') {
    device.fail(new DeviceError('E_DEVICE_NEEDS_RESET', 'the device needs a reset (injected fault needs-reset)', 'reset the device'));
    return;
  }
  // interrupt-storm: every vector `count` times; without MSI-X, both ISR bits (§4.1.4.5).
  if (device.pci.msixActive()) {
    for (let v = 0; v < device.msixTableSize; v++) for (let i = 0; i < f.count; i++) device.pci.signal(v);
    device.stats.spuriousInterrupts += device.msixTableSize * f.count;
  } else {
    device.raiseIsr(Isr.QUEUE | Isr.CONFIG);
    device.stats.spuriousInterrupts++;
  }
}

/** Back to normal: a stuck reset completes, a pending STOP / SUSPEND shows, held-back requests complete. */
export function clearFaults(device: SimVirtioDevice): void {
  device.faults.clear();
  if (device.finishStuckReset()) return;
  // A pending drain completes what completion-silence held back itself; otherwise serve it now.
  const pending = device.releaseQuiet();
  device.engine.releaseStalled(!pending);
  if (pending) return;
  for (const q of device.queues) if (q.enabled) device.engine.schedule(q.index);
}

/**
 * Asks the driver not to notify queue `q` (as a polling device would) or to notify again.
 * Turning notifications back on re-checks the ring, so nothing made available meanwhile is missed.
 * Throws E_INVALID_ARGUMENT for a queue the device does not have.
 */
export function suppressNotifications(device: SimVirtioDevice, q: number, suppressed: boolean): void {
  const queue = device.queues[q];
  if (!queue) throw new UsageError('E_INVALID_ARGUMENT', `the device has no queue ${q}`);
  queue.notifySuppressed = suppressed;
  const ring = queue.ring;
  if (!ring || !device.fetching()) return;
  device.guarded(() => {
    device.engine.requireBusMaster(q);
    ring.publishNotifyWish(!suppressed);
  });
  if (!suppressed) device.engine.schedule(q);
}

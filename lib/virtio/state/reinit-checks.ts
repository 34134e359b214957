// What reinit() checks before it touches any device: the snapshot must fit the target (type,
// queue count and sizes, features, addresses the driver owns — lib/virtio/snapshot/) and be
// exactly this driver's (same queues at the same ring addresses, same features and layout); the
// target must reach the driver's memory through the same allocator (VirtioDevice.dma) and, for a
// snapshot whose mechanism restores indices, supply that facility itself.

import { Feature, featureNames, hasFeature } from '../../spec/index.js';
import { SnapshotError } from '../../errors.js';
import { checkSnapshotTarget, type DeviceSnapshot } from '../snapshot/index.js';
import type { Layout, Virtqueue } from '../queue/types.js';
import { queueStateProblem, type DriverView } from './queue-checks.js';
import type { DmaAllocator } from '../../mem/dma.js';
import type { StateFacility, VirtioTransport } from '../../transport/types.js';

export interface DriverSide {
  deviceType: number;
  features: bigint;
  layout: Layout;
  queues: ReadonlyMap<number, Virtqueue<unknown>>;
  /** Each queue as the driver left it at the stop (queue-checks.ts). */
  views: ReadonlyMap<number, DriverView>;
  /** The memory the rings and buffers live in (VirtioDevice.dma). */
  dma: DmaAllocator;
}

/**
 * Throws the first mismatch as a SnapshotError (E_SNAPSHOT_* codes); `offered` is the target's
 * device features, `facility` the target's facility for the snapshot's mechanism (undefined when
 * it has none: then the rings restart at 0, which only a ring-derived snapshot allows).
 */
export function checkReinit(snap: DeviceSnapshot, driver: DriverSide, target: VirtioTransport, offered: bigint, facility: StateFacility | undefined): void {
  checkSnapshotTarget(snap, {
    address: target.address, deviceType: target.deviceType, numQueues: target.numQueues, offered,
    queueMaxSize: (q) => target.queueMaxSize(q),
    owns: (iova, len) => target.dma.lookup(iova, len) !== undefined,
  });
  checkSameQueues(snap, driver.queues);
  const features = BigInt(snap.features);
  if (features !== driver.features || snap.layout !== driver.layout) {
    throw new SnapshotError('E_SNAPSHOT_FEATURES', `snapshot: its features ${snap.featureNames} differ from this driver's ${featureNames(driver.features, driver.deviceType)}`,
      'a snapshot is restored by the driver that took it');
  }
  checkSameMemory(snap, driver.dma, target);
  if (snap.mechanism === 'ring-state' && facility?.mechanism !== 'ring-state') {
    throw new SnapshotError('E_SNAPSHOT_FEATURES', `snapshot: taken with ring-state, but ${target.address} has no state registers`,
      'restore a ring-state snapshot onto a device that offers VIRTIO_F_RING_STATE');
  }
  if (snap.mechanism === 'backend' && facility?.mechanism !== 'backend') {
    throw new SnapshotError('E_SNAPSHOT_FEATURES', `snapshot: taken from a back-end (vhost-user), but ${target.address} cannot set ring state`,
      'restore a back-end snapshot onto another vhost-user back-end');
  }
  checkAgainstRings(snap, driver.views, facility);
}

/**
 * VirtioDevice.dma stays valid across a reinit onto another device: the target must reach every
 * ring through the same memory the driver writes (a shared arena, container or heap), not merely
 * own an IOVA range of the same name.
 */
function checkSameMemory(snap: DeviceSnapshot, dma: DmaAllocator, target: VirtioTransport): void {
  for (const sq of snap.queues) {
    for (const at of [sq.desc, sq.driver, sq.device]) {
      const mine = dma.lookup(BigInt(at), 1);
      const theirs = target.dma.lookup(BigInt(at), 1);
      if (!mine || !theirs || mine.bytes.buffer !== theirs.bytes.buffer) {
        throw new SnapshotError('E_SNAPSHOT_ADDRESS', `snapshot: ${target.address} does not reach queue ${sq.index}'s rings at ${at} through the driver's memory`,
          'migrate onto a device opened to share the source\'s DMA memory (openTransport(…, { shareWith }))');
      }
    }
  }
}

/**
 * The snapshot's queue state must be one the driver's own rings allow (queue-checks.ts): a file
 * edited by hand, or taken at another stop, would otherwise skip or replay requests. Mechanisms
 * whose state comes from the rings (suspend, quiesce) must match them exactly.
 */
function checkAgainstRings(snap: DeviceSnapshot, views: ReadonlyMap<number, DriverView>, facility: StateFacility | undefined): void {
  const rules = {
    // A facility that restores nothing restarts the rings: the state must be the rings' own.
    exact: facility ? facility.ringDerived : true,
    mayHold: snap.mechanism === 'ring-state' && hasFeature(BigInt(snap.features), Feature.DEVICE_STATE),
  };
  for (const sq of snap.queues) {
    const view = views.get(sq.index)!;
    // Requests the device held at the stop travel in deviceState: a state that holds some without it loses them.
    if (rules.mayHold && sq.availState !== sq.usedState && snap.deviceState === null) {
      throw new SnapshotError('E_SNAPSHOT_INCONSISTENT', `snapshot: queue ${sq.index} says the device held requests (avail state ${sq.availState}, used state ${sq.usedState}), but the snapshot carries no deviceState`,
        'restore the snapshot taken at this stop, unchanged (its deviceState holds those requests)');
    }
    if (sq.inFlight !== view.inFlight) {
      throw new SnapshotError('E_SNAPSHOT_INCONSISTENT', `snapshot: queue ${sq.index} has ${sq.inFlight} chain(s) in flight, the driver's ring has ${view.inFlight}`,
        'restore the snapshot taken at this stop (a snapshot from another stop, or an edited one, does not describe these rings)');
    }
    const problem = queueStateProblem(view, { avail: sq.availState, used: sq.usedState }, rules);
    if (problem) {
      throw new SnapshotError('E_SNAPSHOT_INCONSISTENT', `snapshot: queue ${sq.index}: ${problem}`,
        'restore the snapshot taken at this stop (a snapshot from another stop, or an edited one, does not describe these rings)');
    }
  }
}

/** The snapshot must describe exactly the queues this driver has, at the same addresses. */
function checkSameQueues(snap: DeviceSnapshot, queues: ReadonlyMap<number, Virtqueue<unknown>>): void {
  const mine = [...queues.keys()].sort((a, b) => a - b);
  const theirs = snap.queues.map((q) => q.index).sort((a, b) => a - b);
  if (mine.join(',') !== theirs.join(',')) {
    throw new SnapshotError('E_SNAPSHOT_QUEUE_COUNT', `snapshot: it has queues [${theirs.join(', ')}], this driver has [${mine.join(', ')}]`,
      'a snapshot is restored by the driver that took it, with the same queues');
  }
  for (const sq of snap.queues) {
    const vq = queues.get(sq.index)!;
    if (sq.size !== vq.size) {
      throw new SnapshotError('E_SNAPSHOT_QUEUE_SIZE', `snapshot: queue ${sq.index} has size ${sq.size}, this driver's ring has ${vq.size}`,
        'a snapshot is restored by the driver that took it, with the same rings');
    }
    if (BigInt(sq.desc) !== vq.addresses.desc || BigInt(sq.driver) !== vq.addresses.driver || BigInt(sq.device) !== vq.addresses.device) {
      throw new SnapshotError('E_SNAPSHOT_ADDRESS', `snapshot: queue ${sq.index}'s rings are not at this driver's ring addresses`,
        'a snapshot is restored by the driver (process) whose memory holds its rings');
    }
  }
}

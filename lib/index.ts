// uvirtio's public API. Layers, bottom up: mem, pci, transport, virtio (device, queues, state),
// sim (the reference device). See README.md for a tour.

export * from './spec/index.js';
export * from './errors.js';
export { negotiateFeatures, type FeaturePolicy, type Negotiated } from './virtio/features.js';
export { VirtioDevice, type OpenOptions, type QueueOptions, type StopOptions, type ReinitOptions, type DevicePhase } from './virtio/device.js';
export { createVirtqueue } from './virtio/queue/index.js';
export type { Virtqueue, VirtqueueOptions, Segment, Layout, UsedElement, QueueAddresses, QueueFeatures, VqDriverState } from './virtio/queue/types.js';
export { RequestQueue, type Completion as RequestCompletion, type RequestSpec, type RequestToken } from './virtio/request-queue.js';
export { QueueSet, type QueueSetOptions } from './virtio/queue-set.js';
export {
  parseSnapshot, readSnapshotFile, writeSnapshotFile, validateSnapshot, checkSnapshotTarget,
  SNAPSHOT_FORMAT, SNAPSHOT_VERSION, type DeviceSnapshot, type SnapshotQueue, type Mechanism,
} from './virtio/snapshot.js';
export { HeapDmaAllocator, type DmaAllocator, type DmaRegion, type GuestMemory } from './mem/dma.js';
export type { PciFunction, RegisterWindow, MsixController } from './pci/function.js';
export { walkCapabilities, enableBusMaster, PciConfig } from './pci/config.js';
export type { VirtioTransport, QueueSetup, ConfigWidth, VqState, StateFacility, StateContext, DeviceStateMailbox, SplitRingIndices } from './transport/types.js';
export { VirtioPciTransport } from './transport/pci/transport.js';
export { discoverVirtioPci, virtioDeviceType } from './transport/pci/caps.js';
export { parseAddress, formatAddress, normaliseBdf, type DeviceAddress } from './address.js';
export {
  createSimDevice, type SimDevice, type SimBlkDevice, type SimNetDevice, type SimRngDevice, type AnySimDevice,
  type SimBlkOptions, type SimNetOptions, type SimRngOptions, type SimOptions, type BlkRequestRecord,
} from './sim/index.js';
export { openTransport, type OpenedDevice, type OpenTransportOptions } from './open.js';
export { initialVqState } from './virtio/state/quiesce.js';
export { DeviceConfig } from './virtio/config.js';

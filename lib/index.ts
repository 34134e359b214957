// uvirtio's public API: what a driver author, a transport author and a test engineer use. Layers,
// bottom up (docs/architecture.md#layers): the spec's numbers and the errors, memory, PCI, VFIO,
// transports, virtio (device, queues, state, snapshots), and the reference device.
//
// Not exported, on purpose (they are the machinery behind what is): building a virtqueue by hand
// (createVirtqueue: VirtioDevice.setupQueue / QueueSet place and program rings), the PCI capability
// walk and bus-master switch (walkCapabilities, enableBusMaster, PciConfig, discoverVirtioPci,
// virtioDeviceType: the virtio-pci transport runs them), the state facilities' initial values
// (initialVqState), the CLI, and the reference device's internals (`uvirtio/sim` has those).

export * from './spec/index.js';
export * from './errors.js';
export { negotiateFeatures, type FeaturePolicy, type Negotiated } from './virtio/features.js';
export { VirtioDevice, DEFAULT_POLL_SPIN_US, type OpenOptions, type CloseOptions, type QueueOptions, type StopOptions, type StopPreparation, type ReinitOptions, type DevicePhase } from './virtio/device.js';
export { POLL_BUDGET_FLOOR, type PollBudget } from './virtio/busy-poll.js';
export type { Virtqueue, VirtqueueOptions, Segment, Layout, UsedElement, QueueAddresses, QueueFeatures, VqDriverState } from './virtio/queue/types.js';
export { RequestQueue, type Completion as RequestCompletion, type CompletionCallback, type RequestSpec, type RequestToken } from './virtio/request-queue.js';
export { QueueSet, type QueueSetOptions } from './virtio/queue-set.js';
export type { WatchdogStats } from './virtio/watchdog.js';
export {
  parseSnapshot, readSnapshotFile, writeSnapshotFile, validateSnapshot, checkSnapshotTarget,
  SNAPSHOT_FORMAT, SNAPSHOT_VERSION, MAX_DEVICE_STATE_BYTES, MAX_SNAPSHOT_FILE_BYTES,
  type DeviceSnapshot, type SnapshotQueue, type Mechanism, type SnapshotTarget,
} from './virtio/snapshot/index.js';
export { HeapDmaAllocator, type HeapDmaOptions, type DmaAllocator, type DmaRegion, type GuestMemory, type GuestRegion, FreeGuards, type InUseCheck } from './mem/dma.js';
export type { PciFunction, RegisterWindow, MsixController } from './pci/function.js';
export { VfioPciFunction, type VfioOpenOptions } from './vfio/pci-function.js';
export type { VirtioTransport, QueueSetup, ConfigWidth, VqState, StateFacility, StateContext, DeviceStateMailbox, SplitRingIndices } from './transport/types.js';
export { VirtioPciTransport } from './transport/pci/transport.js';
export { VhostUserTransport, type VhostUserOptions, type StopObservation } from './transport/vhost-user/transport.js';
export type { MemfdArena } from './transport/vhost-user/arena.js';
export { VhostVdpaTransport, type VhostVdpaOptions } from './transport/vhost-vdpa/transport.js';
export type { VdpaStopObservation } from './transport/vhost-vdpa/state.js';
export { parseAddress, formatAddress, normaliseBdf, type DeviceAddress, type Scheme } from './address.js';
export {
  createSimDevice, type SimDevice, type SimBlkDevice, type SimNetDevice, type SimRngDevice, type AnySimDevice,
  type SimBlkOptions, type SimNetOptions, type SimRngOptions, type SimOptions, type BlkRequestRecord,
} from './sim/index.js';
export { openTransport, type OpenedTransport, type OpenedDevice, type OpenTransportOptions } from './open.js';
export { DeviceConfig } from './virtio/config.js';

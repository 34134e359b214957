// VirtioTransport: how a VirtioDevice (lib/virtio) reaches a device — the modern virtio-pci
// transport over any PciFunction (pci/), and the vhost-user front-end (vhost-user/). A transport
// offers raw register-level access; everything written once for every transport (the §3.1.1
// sequence, the config_generation retry, the queue records) lives in lib/virtio. Its stop/state
// facilities are in ./state.ts.

import type { DmaAllocator } from '../mem/dma.js';
import type { QueueAddresses } from '../spec/ring.js';
import type { UvirtioError } from '../errors.js';
import type { SplitRingIndices, StateFacility } from './state.js';

export type { Mechanism, StateFacility, StateContext, VqState, DeviceStateMailbox, SplitRingIndices } from './state.js';

/** What configureQueue programs for one queue (virtio 1.2 §4.1.5.1.3 for virtio-pci). */
export interface QueueSetup {
  /** Ring size in entries (split: a power of two). */
  size: number;
  /** IOVAs of the descriptor table, the driver area and the device area. */
  addresses: QueueAddresses;
  /** MSI-X vector for used-buffer notifications, or VIRTIO_MSI_NO_VECTOR. */
  vector: number;
  /**
   * A split ring's avail->idx and used->idx, read and written by the virtqueue that owns the ring
   * memory (lib/virtio/queue/split.ts); absent for a packed ring. A transport whose back-end must
   * be waited on while it finishes a ring (vhost-user) uses these instead of reading ring memory.
   */
  ring?: SplitRingIndices;
}

/** Widths of a raw device-configuration access in bytes (virtio 1.2 §2.5.1). */
export type ConfigWidth = 1 | 2 | 4;

/**
 * Register-level access to one virtio device, whatever carries it: status (virtio 1.2 §2.1), reset
 * (§2.4), features (§2.2), queue set-up and notification, interrupts, device configuration (§2.5)
 * and the stop/state facilities of the provisional proposal (docs/provisional-registers.md). A
 * VirtioDevice builds everything transport-independent on top of it. Implementations: the modern
 * virtio-pci transport (§4.1) and the vhost-user front-end. Methods throw {@link UvirtioError}s
 * with the transport's stable codes.
 */
export interface VirtioTransport {
  /** For messages: "0000:00:02.0", "sim:blk". */
  readonly address: string;
  /** Virtio device id (virtio 1.2 §5): 1 net, 2 blk, … */
  readonly deviceType: number;
  /** Memory the device can reach; queues and buffers come from here. */
  readonly dma: DmaAllocator;
  /** Queues the device has (num_queues). */
  readonly numQueues: number;
  /**
   * True when the device runs on the driver's own thread (the in-process reference device), so
   * nothing completes while the driver spins: OpenOptions.pollSpinUs then defaults to 0.
   */
  readonly deviceOnDriverThread?: boolean;

  /** The device_status register (virtio 1.2 §2.1). */
  readStatus(): number;
  /**
   * The status register store. A transport whose device answers status changes asynchronously
   * (vhost-user: FEATURES_OK and DRIVER_OK become messages) starts that work here and finishes it
   * in flush(); readStatus() shows the outcome afterwards (a refused FEATURES_OK reads clear).
   */
  writeStatus(status: number): void;
  /**
   * Waits (bounded by timeoutMs) until the device has taken every status change and queue set-up
   * written so far. Rejects with the transport's typed error (E_VHOST_TIMEOUT, E_VHOST_LOST, …).
   * Absent where register writes take effect at once (virtio-pci).
   */
  flush?(timeoutMs: number): Promise<void>;
  /** Writes 0 and waits (bounded) until the device reads back 0 (virtio 1.2 §2.4). Rejects E_RESET_TIMEOUT. */
  reset(timeoutMs: number): Promise<void>;

  /** The device feature bits (virtio 1.2 §2.2), all 128 the transport can show. */
  deviceFeatures(): bigint;
  /** Writes the driver feature bits (before FEATURES_OK). */
  writeDriverFeatures(features: bigint): void;

  /** The largest size the device supports for queue q; 0 when the queue is not available. */
  queueMaxSize(q: number): number;
  /** Programs size, addresses and vector; returns the vector the device accepted (NO_VECTOR if refused). */
  configureQueue(q: number, setup: QueueSetup): number;
  /** queue_enable (virtio 1.2 §4.1.4.3); after configureQueue and any state restore. */
  enableQueue(q: number): void;
  /** The store that notifies the device about queue q's new available buffers (after configureQueue). */
  notifier(q: number): () => void;

  /**
   * Routes interrupts to `handler`. Asks for `vectorsWanted` vectors (config + queues); returns
   * how many the platform gave (0: poll). Vector 0 is always the configuration vector.
   */
  enableInterrupts(vectorsWanted: number, handler: (vector: number) => void): number;
  /** Assigns the configuration-change vector; returns what the device accepted. */
  setConfigVector(vector: number): number;
  /** Releases interrupt vectors (never throws on a closed transport). */
  disableInterrupts(): void;

  /** Bytes of device configuration the device exposes. */
  readonly configLength: number;
  /**
   * Why the device may expose less configuration than its type's layout, as a hint a person can
   * act on (vhost-user: the back-end did not offer VHOST_USER_PROTOCOL_F_CONFIG); absent where
   * the transport has nothing to say. DeviceConfig puts it on its E_CAP_MISSING.
   */
  readonly configMissingHint?: string;
  /**
   * One raw little-endian access of `width` bytes at `offset` in the device configuration, without
   * the generation retry (lib/virtio/config.ts adds it). Throws outside it (E_INVALID_ARGUMENT, or
   * E_CAP_MISSING where the transport knows the device lacks it).
   */
  readConfig(offset: number, width: ConfigWidth): number;
  /** One raw store; absent where the transport cannot write device configuration (vhost-user). */
  writeConfig?(offset: number, width: ConfigWidth, value: number): void;
  /** config_generation (virtio 1.2 §2.5.1); constant where the configuration is a copy (vhost-user). */
  configGeneration(): number;

  /**
   * The feature bits of the state proposal this transport has room for (RING_STATE and
   * DEVICE_STATE need registers; SUSPEND only the status bit): offered to negotiation when the
   * driver wants stop/state (OpenOptions.stateFeatures).
   */
  stateFeatures(): readonly number[];
  /**
   * The stop/state facilities this transport supplies for a device that negotiated `features`,
   * best first (virtio-pci: ring-state, suspend; vhost-user: backend). The device adds the generic
   * quiesce (lib/virtio/state/quiesce.ts); VirtioDevice.mechanisms() is this list.
   */
  stateFacilities(features: bigint): readonly StateFacility[];
  /**
   * Where the device can vanish (vhost-user: the back-end process exits; any: the transport was
   * closed under the device): calls `listener` once when it does, with the error pending requests
   * should be rejected with. Returns an unsubscribe.
   */
  onLost?(listener: (error: UvirtioError) => void): () => void;

  /**
   * True once close() ran (a driver's close() closes its transport too). A closed transport cannot
   * be opened again: VirtioDevice.open and reinit() refuse it with E_CLOSED. Absent on a transport
   * that cannot tell, which is then taken as open.
   */
  readonly closed?: boolean;
  /** Releases the device and this transport's resources; idempotent. */
  close(): void;
}

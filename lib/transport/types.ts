// VirtioTransport: how a VirtioDevice reaches a device. Implemented by the modern virtio-pci
// transport (over any PciFunction) and, later, by the vhost-user front-end.

import type { DmaAllocator } from '../mem/dma.js';
import type { QueueAddresses } from '../spec/ring.js';
import type { UvirtioError } from '../errors.js';

export interface QueueSetup {
  size: number;
  addresses: QueueAddresses;
  /** MSI-X vector for used-buffer notifications, or VIRTIO_MSI_NO_VECTOR. */
  vector: number;
}

export type InterruptMode = 'msix' | 'poll';

/** One queue's state in the provisional encoding (SPEC-NOTES §1): split 16-bit indices; packed index|wrap<<15. */
export interface VqState {
  avail: number;
  used: number;
}

export interface BackendStateAccess {
  /** Stops ring q and returns its state (vhost-user GET_VRING_BASE: the next available index; SPEC-NOTES §2). */
  stopQueue(q: number): Promise<VqState>;
}

/**
 * The proposal's registers, where the transport has them: per-queue available/used state
 * (readable while STOP shows, writable between FEATURES_OK and DRIVER_OK) and, with the
 * DEVICE_STATE extension, the device's extra-state mailbox.
 */
export interface RingStateAccess {
  readVqState(q: number): VqState;
  writeVqState(q: number, state: VqState): void;
  /** Whether the DEVICE_STATE mailbox registers exist. */
  readonly hasDeviceState: boolean;
  /** SAVE: the device writes its extra state into memory at `iova`; returns its length (0: none). */
  saveDeviceState(iova: bigint, capacity: number): number;
  /** LOAD: the device reads `length` bytes of extra state from `iova`. */
  loadDeviceState(iova: bigint, length: number): void;
  /** The length the device would SAVE now. */
  deviceStateLength(): number;
}

/** What an interrupt was about: a queue (its index) or the device configuration. */
export type InterruptCause = { kind: 'queue'; queues: readonly number[] } | { kind: 'config' };

export interface VirtioTransport {
  /** For messages: "0000:00:02.0", "sim:blk". */
  readonly address: string;
  /** Virtio device id (virtio 1.2 §5): 1 net, 2 blk, … */
  readonly deviceType: number;
  /** Memory the device can reach; queues and buffers come from here. */
  readonly dma: DmaAllocator;
  /** Queues the device has (num_queues). */
  readonly numQueues: number;

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
  /** Writes 0 and waits (bounded) until the device reads back 0 (virtio 1.2 §2.4). */
  reset(timeoutMs: number): Promise<void>;

  deviceFeatures(): bigint;
  writeDriverFeatures(features: bigint): void;

  /** The largest size the device supports for queue q; 0 when the queue is not available. */
  queueMaxSize(q: number): number;
  /** Programs size, addresses and vector; returns the vector the device accepted (NO_VECTOR if refused). */
  configureQueue(q: number, setup: QueueSetup): number;
  enableQueue(q: number): void;
  /** The store that notifies the device about queue q's new available buffers. */
  notifier(q: number): () => void;

  /**
   * Routes interrupts to `handler`. Asks for `vectorsWanted` vectors (config + queues); returns
   * how many the platform gave (0: poll). Vector 0 is always the configuration vector.
   */
  enableInterrupts(vectorsWanted: number, handler: (vector: number) => void): number;
  /** Assigns the configuration-change vector; returns what the device accepted. */
  setConfigVector(vector: number): number;
  disableInterrupts(): void;

  /** Device configuration, read consistently (generation retry); widths per virtio 1.2 §2.5.1. */
  readConfig8(offset: number): number;
  readConfig16(offset: number): number;
  readConfig32(offset: number): number;
  readConfig64(offset: number): bigint;
  /** A byte range read in one generation (e.g. a MAC address). */
  readConfigBytes(offset: number, length: number): Uint8Array;
  writeConfig8(offset: number, value: number): void;
  writeConfig16(offset: number, value: number): void;
  writeConfig32(offset: number, value: number): void;
  /** Bytes of device configuration the device exposes. */
  readonly configLength: number;
  /** The proposal's state registers, when the transport has room for them (else undefined). */
  readonly ringState: RingStateAccess | undefined;
  /**
   * A back-end that stops a ring and reports its state itself (vhost-user GET_VRING_BASE;
   * vhost-vdpa later). With it, reinit writes the state through `ringState.writeVqState`
   * (SET_VRING_BASE), so such a transport provides both.
   */
  readonly backendState?: BackendStateAccess | undefined;
  /**
   * Where the device can vanish (vhost-user: the back-end process exits): calls `listener` once
   * when it does, with the error pending requests should be rejected with. Returns an unsubscribe.
   */
  onLost?(listener: (error: UvirtioError) => void): () => void;

  close(): void;
}

// What a device type (blk, net) supplies to the generic virtio device in device.ts. The generic
// part owns the transport, the rings and the interrupts; a model only gives its features and
// configuration and turns chains into work.

import type { GuestMemory } from '../mem/dma.js';
import type { DeviceConfigSpace } from './device-config.js';
import type { Chain } from './ring.js';

/** What the generic device offers a model. */
export interface ModelHost {
  readonly mem: GuestMemory;
  /** Asks for queue `q` to be processed soon (asynchronously), e.g. received data is waiting. */
  wake(q: number): void;
  /** The device configuration changed: bump config_generation and send a config interrupt. */
  configChanged(): void;
}

/** A buffer of a receive queue and the bytes the model wrote into it. */
export interface Filled {
  chain: Chain;
  written: number;
}

export interface DeviceModel {
  /** virtio device id (virtio 1.2 §5). */
  readonly deviceType: number;
  readonly queueCount: number;
  /** Device-type feature bits offered (0–23). */
  readonly features: bigint;
  readonly config: DeviceConfigSpace;
  attach(host: ModelHost): void;
  /**
   * True for queues whose chains are requests the device fetches when notified (blk, net tx);
   * false for receive queues, whose buffers wait in the ring until the device has data.
   */
  fetchesRequests(q: number): boolean;
  /** Carries out one request from queue `q`; returns the bytes written to its writable part. */
  serve(q: number, chain: Chain): number;
  /** Fills buffers of receive queue `q` with waiting data, fetching them with `take`. */
  receive(q: number, take: () => Chain | undefined): Filled[];
  /** The device was reset: drop anything held for the driver. */
  reset(): void;
}

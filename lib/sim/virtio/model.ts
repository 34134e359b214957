// What a device type (blk, net, rng: models/) supplies to the generic virtio device in device.ts. The generic
// part owns the transport, the rings and the interrupts; a model only gives its features and
// configuration and turns chains into work.

import type { GuestMemory } from '../../mem/dma.js';
import type { DeviceConfigSpace } from './device-config.js';
import type { ReplyFault } from './faults.js';
import type { Chain } from './ring/chain.js';
import type { RuleId } from './rules.js';

/** What the generic device offers a model. */
export interface ModelHost {
  readonly mem: GuestMemory;
  /** Asks for queue `q` to be processed soon (asynchronously), e.g. received data is waiting. */
  wake(q: number): void;
  /** The device configuration changed: bump config_generation and send a config interrupt. */
  configChanged(): void;
  /**
   * The driver broke an 'ignore' rule of the device type (rules.ts): recorded, and the model goes
   * on. A 'needs-reset' rule is thrown instead, as RuleViolation.
   */
  violation(rule: RuleId, message: string, queue?: number): void;
}

/** A buffer of a receive queue and the bytes the model wrote into it. */
export interface Filled {
  chain: Chain;
  written: number;
}

/**
 * The receive buffers of one queue, fetched one at a time. putBack(n) un-fetches the last n taken
 * in this call (their ring positions are restored, nothing was written): a frame that needs more
 * buffers than are available waits whole (virtio 1.2 §5.1.6.4, MRG_RXBUF), as vhost's
 * vhost_discard_vq_desc does.
 */
export interface ReceiveBuffers {
  take(): Chain | undefined;
  putBack(count: number): void;
}

export interface DeviceModel {
  /** virtio device id (virtio 1.2 §5). */
  readonly deviceType: number;
  readonly queueCount: number;
  /** Device-type feature bits offered (0–23). */
  readonly features: bigint;
  /** [feature, feature it requires] pairs the driver must respect (virtio 1.2 §2.2.1, e.g. net §5.1.3.1). */
  readonly featureDependencies?: readonly (readonly [number, number])[];
  readonly config: DeviceConfigSpace;
  attach(host: ModelHost): void;
  /**
   * True for queues whose chains are requests the device fetches when notified (blk, net tx);
   * false for receive queues, whose buffers wait in the ring until the device has data.
   */
  fetchesRequests(q: number): boolean;
  /**
   * Carries out one request from queue `q`; returns the bytes written to its writable part. With
   * `fault` (one the model said it supports) it misbehaves as faults.ts describes.
   */
  serve(q: number, chain: Chain, fault?: ReplyFault): number;
  /** Whether queue `q`'s replies can carry `fault` (faults.ts); default none. */
  supportsReplyFault?(q: number, fault: ReplyFault): boolean;
  /** Applies `fault` to a filled receive buffer of queue `q` (used-len-short: the len it reports). */
  receiveFault?(q: number, fault: ReplyFault, filled: Filled): void;
  /** Fills buffers of receive queue `q` with waiting data, fetching them from `buffers`. */
  receive(q: number, buffers: ReceiveBuffers): Filled[];
  /** The driver's accepted features, at FEATURES_OK (a queue layout may depend on them: net's control queue). */
  featuresAccepted?(features: bigint): void;
  /** Whether the device uses queue `q` now (net: pairs beyond VQ_PAIRS_SET are left alone); default all. */
  queueActive?(q: number): boolean;
  /**
   * A driver's write of `width` bytes at `offset` of the device configuration (`offered`: the
   * features the device offers). Absent: the configuration is read-only (writes have no effect).
   */
  writeConfig?(offset: number, width: 1 | 2 | 4, value: number, offered: bigint): void;
  /** The device was reset: drop anything held for the driver. */
  reset(): void;
}

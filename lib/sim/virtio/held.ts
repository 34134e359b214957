// Requests the device holds across a STOP in 'hold' mode, and how they come back (PROVISIONAL,
// DEVICE_STATE, docs/provisional-registers.md; layout in device-state.ts):
//
// - SAVE lists every queue's fetched, unfinished chains.
// - LOAD (between FEATURES_OK and DRIVER_OK) decodes the bytes — MALFORMED when they are not a state
//   this device wrote — and checks them against the device as it stands: queue count, queues that
//   hold requests at all, each buffer in driver memory, and, for queues already enabled, ids and
//   descriptor slots within the ring — MISMATCH otherwise. The driver learns at once, from the
//   CMD register, instead of at DRIVER_OK.
// - DRIVER_OK is the backstop for what depends on the state registers, which may be written after
//   LOAD: each enabled queue's state is possible for its layout, and the requests between its used
//   and available positions are exactly the held ones loaded for it (with DEVICE_STATE negotiated:
//   without a LOAD, none). A violation sets DEVICE_NEEDS_RESET (rules.ts state-impossible,
//   state-held-mismatch). Each held request is then in flight again, to be served once.

import type { GuestMemory } from '../../mem/dma.js';
import { DeviceStateRefusal } from '../../spec/index.js';
import { thrownMessage } from '../../util/shown.js';
import { DeviceStateFormatError, decodeDeviceState, encodeDeviceState, heldRequest, type HeldRequest } from './device-state.js';
import type { SimQueue } from './queue.js';
import { outstanding, stateProblem } from './queue-state.js';
import { addSegment, emptyChain, numericAddress, type Chain } from './ring/chain.js';
import { RuleViolation } from './rules.js';
import { Refusal } from './state-mailbox.js';

/** What the held requests need from the device. */
export interface HeldHost {
  readonly queues: readonly SimQueue[];
  readonly mem: GuestMemory;
  /** RING_PACKED negotiated. */
  readonly packed: boolean;
  /** DEVICE_STATE negotiated: the queues' gaps must be accounted for by a LOAD. */
  readonly deviceStateNegotiated: boolean;
  /** Whether queue `q` holds requests at all (a model's request queues; not net's receive queues). */
  fetchesRequests(q: number): boolean;
}

export class HeldRequests {
  /** Taken in by LOAD, restored at DRIVER_OK; cleared by reset. */
  private loaded: HeldRequest[] | undefined;
  /** Restored chains per queue, waiting for the queue's first processing after DRIVER_OK. */
  private readonly restored = new Map<number, Chain[]>();

  constructor(private readonly host: HeldHost) {}

  reset(): void {
    this.loaded = undefined;
    this.restored.clear();
  }

  /** SAVE: every fetched, unfinished chain; empty when there are none. */
  save(): Uint8Array {
    const held = this.host.queues.flatMap((q) => q.state.inFlight.toArray().map((chain) => heldRequest(q.index, chain)));
    // Nothing held, no extra state: DEVICE_STATE_LEN reads 0 and the driver has nothing to carry.
    return held.length === 0 ? new Uint8Array(0) : encodeDeviceState(held);
  }

  /** LOAD: the format (MALFORMED) and the fit with the device as configured now (MISMATCH). */
  load(bytes: Uint8Array): void {
    let held: HeldRequest[];
    try {
      held = decodeDeviceState(bytes);
    } catch (e) {
      if (e instanceof DeviceStateFormatError) throw new Refusal(DeviceStateRefusal.MALFORMED, e.message);
      throw e;
    }
    const mismatch = (why: string): never => {
      throw new Refusal(DeviceStateRefusal.MISMATCH, `device state: ${why}`);
    };
    const { queues } = this.host;
    const slots = new Map<number, number>();
    for (const r of held) {
      const queue = queues[r.queue];
      if (!queue) return mismatch(`held request ${r.id} names queue ${r.queue}; the device has ${queues.length}`);
      if (!this.host.fetchesRequests(r.queue)) mismatch(`queue ${r.queue} never holds requests`);
      const size = queue.enabled ? queue.size : queue.maxSize;
      if (r.id >= size) mismatch(`held request id ${r.id} is beyond queue ${r.queue}'s ${queue.enabled ? 'size' : 'largest size'} ${size}`);
      // Held chains keep their descriptors (split: in the table; packed: their slots): all of them fit the ring.
      const used = (slots.get(r.queue) ?? 0) + r.ringDescs;
      if (used > size) mismatch(`queue ${r.queue} cannot hold requests of ${used} descriptors in a ring of ${size}`);
      slots.set(r.queue, used);
      try {
        this.toChain(r);
      } catch (e) {
        mismatch(`held request ${r.id} of queue ${r.queue}: ${thrownMessage(e)}`);
      }
    }
    this.loaded = held;
  }

  /** DRIVER_OK: the backstop checks (see the top of this file), then the held requests are in flight again. */
  restore(): void {
    const { packed, queues } = this.host;
    const loaded = this.loaded ?? [];
    this.loaded = undefined;
    for (const r of loaded) {
      const queue = queues[r.queue]!;
      if (!queue.enabled) throw new RuleViolation('state-held-mismatch', r.queue, `device state: held request ${r.id} is for queue ${r.queue}, which is not enabled`);
      if (r.id >= queue.size) throw new RuleViolation('state-held-mismatch', r.queue, `device state: held request id ${r.id} is beyond queue ${r.queue}'s size ${queue.size}`);
    }
    for (const queue of queues) {
      if (!queue.enabled) continue;
      const problem = stateProblem(queue, packed);
      if (problem) throw new RuleViolation('state-impossible', queue.index, problem);
      if (!this.host.deviceStateNegotiated) continue;
      const mine = loaded.filter((r) => r.queue === queue.index);
      const accounted = mine.reduce((n, r) => n + (packed ? r.ringDescs : 1), 0);
      const gap = outstanding(queue, packed)!;
      if (accounted !== gap) {
        throw new RuleViolation('state-held-mismatch', queue.index,
          `${gap} ${packed ? 'descriptor slots' : 'requests'} lie between the used and available state, but the device state holds ${accounted}`);
      }
      const chains = mine.map((r) => this.toChain(r));
      for (const chain of chains) queue.claim(chain.id);
      for (const chain of chains) queue.state.inFlight.push(chain);
      if (chains.length > 0) this.restored.set(queue.index, chains);
    }
  }

  /** The restored chains of queue `q`, once: its first processing after DRIVER_OK serves them. */
  take(q: number): Chain[] | undefined {
    const chains = this.restored.get(q);
    if (chains) this.restored.delete(q);
    return chains;
  }

  /** A held request as the chain the ring would have given (checks its memory like a fetch does). */
  private toChain(r: HeldRequest): Chain {
    const chain = emptyChain(r.id);
    chain.ringDescs = r.ringDescs;
    for (const s of r.segments) addSegment(chain, r.queue, this.host.mem, s.addr, numericAddress(s.addr), s.len, s.writable);
    return chain;
  }
}

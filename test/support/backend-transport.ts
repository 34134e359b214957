// A VirtioTransport-level fake of a back-end that stops rings itself (the 'backend' mechanism of
// vhost-user, lib/transport/vhost-user/state.ts), over any transport whose device has the
// proposal's state registers (a sim device with ring-state): the fake's only state facility is a
// 'backend' one that stops the device and reports each ring's state from those registers, and
// restores it through them. With it the core's backend path — mechanisms(), stop, vqState checks,
// snapshot, reinit that restores indices, a refused target — runs in the sim tier, without
// qemu-storage-daemon.

import { DeviceError } from '../../lib/errors.js';
import type { StateContext, StateFacility, VirtioTransport, VqState } from '../../lib/transport/types.js';

export interface BackendFake {
  transport: VirtioTransport;
  /** Each restore the core asked for, in order. */
  restored: { q: number; state: VqState }[];
  /** Stops the facility carried out. */
  stops: number;
  /** When set, read() reports this instead of what the device has (a back-end that lies). */
  lie?: (q: number, truth: VqState) => VqState;
}

/** Wraps `inner` (whose device must offer RING_STATE) as a transport whose one facility is 'backend'. */
export function backendTransport(inner: VirtioTransport): BackendFake {
  const last = new Map<number, VqState>();
  let features = 0n;
  const registers = (): StateFacility => {
    const f = inner.stateFacilities(features).find((x) => x.mechanism === 'ring-state');
    if (!f) throw new Error('the fake back-end needs a device with ring-state');
    return f;
  };
  const fake: BackendFake = { transport: inner, restored: [], stops: 0 };
  const facility: StateFacility = {
    mechanism: 'backend',
    restoresIndices: true,
    ringDerived: false,
    async stop(ctx: StateContext, timeoutMs: number) {
      last.clear();
      await registers().stop(ctx, timeoutMs);
      for (const q of ctx.queues) {
        const truth = registers().read(ctx, q);
        last.set(q, fake.lie ? fake.lie(q, truth) : truth);
      }
      fake.stops++;
    },
    read(_ctx, q) {
      const s = last.get(q);
      if (!s) throw new DeviceError('E_STATE_NOT_STOPPED', `${inner.address}: queue ${q} has not been stopped`);
      return s;
    },
    restore(q, state) {
      fake.restored.push({ q, state });
      registers().restore(q, state);
    },
  };
  fake.transport = Object.create(inner, {
    stateFeatures: { value: () => inner.stateFeatures() },
    stateFacilities: {
      value: (negotiated: bigint) => {
        features = negotiated;
        return [facility];
      },
    },
  }) as VirtioTransport;
  return fake;
}

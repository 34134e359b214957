// The proposal's STOP + virtqueue state (RING_STATE; docs/provisional-registers.md) and virtio
// 1.4 SUSPEND, where offered: the stop shows within a bound, the device stays quiet after it,
// the state it reports is possible, STOP is not undone by a status write, and state written
// before DRIVER_OK takes effect. Traffic is the harmless probe request of ../traffic.ts.

import { Feature, Status } from '../../../lib/spec/index.js';
import { DeviceError } from '../../../lib/errors.js';
import type { VirtioDevice } from '../../../lib/virtio/device.js';
import type { Virtqueue } from '../../../lib/virtio/queue/types.js';
import { PROBES } from '../traffic.js';
import { fail, pass, type Check, type CheckContext } from '../types.js';

const TYPES = Object.keys(PROBES).map(Number);

interface Live {
  d: VirtioDevice;
  vq: Virtqueue<number>;
  interrupts: () => number;
  /** Sends one probe request and polls until nothing is in flight (bounded). */
  request(): Promise<void>;
  /** Makes one probe request available and notifies, without waiting. */
  post(): void;
  /** Stops with `mechanism` within half the check's bound; resolves with how long it took, ms. */
  stop(mechanism: 'ring-state' | 'suspend'): Promise<number>;
}

/** Half the check's bound (ms, at least 1): what one stop, reinit or resume may take. */
const half = (ctx: CheckContext): number => Math.max(1, Math.floor(ctx.timeoutMs / 2));

async function bringUp(ctx: CheckContext): Promise<Live> {
  const probe = PROBES[ctx.t.deviceType]!;
  const d = await ctx.open({ stateFeatures: true });
  let interrupts = 0;
  const vq = d.setupQueue<number>(probe.queue, { size: Math.min(8, ctx.t.queueMaxSize(probe.queue)), onUsed: () => interrupts++ });
  await d.driverOk();
  await ctx.live();
  const buf = ctx.alloc(1024);
  const post = (): void => {
    const { readable, writable } = probe.chain(buf);
    vq.add(readable, writable, 0);
    d.notifyQueue(probe.queue);
  };
  const request = async (): Promise<void> => {
    post();
    const deadline = performance.now() + ctx.timeoutMs / 4;
    for (;;) {
      while (vq.popUsed());
      if (vq.inFlight === 0) return;
      if (performance.now() > deadline) throw new DeviceError('E_DEVICE_UNRESPONSIVE', `${vq.inFlight} request(s) not used within ${Math.round(ctx.timeoutMs / 4)} ms`,
        'the device did not answer within a quarter of the check\'s bound: raise --check-timeout for a slow device');
      await new Promise((r) => setImmediate(r));
    }
  };
  await request();
  const stop = async (mechanism: 'ring-state' | 'suspend'): Promise<number> => {
    const t0 = performance.now();
    await d.stop({ mechanism, timeoutMs: half(ctx) });
    return performance.now() - t0;
  };
  return { d, vq, interrupts: () => interrupts, request, post, stop };
}

const RING_STATE = { types: TYPES, features: [Feature.RING_STATE] };

/** STOP/virtqueue-state checks (the proposal) and SUSPEND (virtio 1.4 §3.4), where offered. */
export const STATE_CHECKS: readonly Check[] = [
  {
    id: 'state.stop-shows', section: 'proposal', level: 'MUST', needs: RING_STATE,
    clause: 'once the driver sets STOP on a running device, the device shows STOP in device_status (within a bound)',
    does: 'brings the device up, completes a request, sets STOP and waits for it (bounded)',
    async run(ctx) {
      const ms = await (await bringUp(ctx)).stop('ring-state');
      return pass(`STOP shown after ${ms.toFixed(2)} ms`);
    },
  },
  {
    id: 'state.quiet-after-stop', section: 'proposal', level: 'MUST', needs: RING_STATE,
    clause: 'a device with nothing in flight sends no interrupt for a STOP, and once STOP shows it neither uses buffers nor sends interrupts',
    does: 'stops the device with nothing in flight, then makes a request available and notifies; from the stop on, for 20 ms after, nothing may be used and no interrupt come',
    async run(ctx) {
      const live = await bringUp(ctx);
      const before = live.interrupts(); // nothing in flight: a stop has nothing to complete
      await live.stop('ring-state');
      live.post();
      await new Promise((r) => setTimeout(r, 20));
      if (live.vq.usedPending()) return fail('a buffer made available after STOP showed was used');
      const n = live.interrupts() - before;
      return n ? fail(`${n} interrupt(s) after STOP showed`) : pass('nothing used, no interrupt for 20 ms');
    },
  },
  {
    id: 'state.vq-state', section: 'proposal', level: 'MUST', needs: RING_STATE,
    clause: 'while stopped, the queue state the device reports is the one the rings show (avail and used indices)',
    does: 'stops the device after one request and reads the queue state, which the SDK checks against its own rings (E_DEVICE_BAD_STATE)',
    async run(ctx) {
      const live = await bringUp(ctx);
      await live.stop('ring-state');
      const s = live.d.vqState(live.vq.index);
      return pass(`avail ${s.avail}, used ${s.used}`);
    },
  },
  {
    id: 'state.stop-sticks', section: 'proposal', level: 'MUST', needs: RING_STATE,
    clause: 'STOP is one-way: a status write without it does not clear it (only a reset does)',
    does: 'stops the device, writes device_status without STOP and reads it back',
    async run(ctx) {
      const live = await bringUp(ctx);
      await live.stop('ring-state');
      ctx.t.writeStatus(ctx.t.readStatus() & ~Status.STOP);
      const status = ctx.t.readStatus();
      return status & Status.STOP ? pass('STOP still shows') : fail(`device_status 0x${status.toString(16)}: STOP cleared by a status write`);
    },
  },
  {
    id: 'state.restore', section: 'proposal', level: 'MUST', needs: RING_STATE,
    clause: 'state written between FEATURES_OK and DRIVER_OK takes effect: the device continues from it (with DEVICE_STATE, its own state is saved and loaded)',
    does: 'stops with a request in flight, snapshots (SAVE), re-initialises the same device from the snapshot (LOAD) and sees every request complete',
    async run(ctx) {
      const live = await bringUp(ctx);
      live.post(); // in flight at the stop: drained, or held and saved with DEVICE_STATE
      await new Promise((r) => setTimeout(r, 2)); // the device's turn to fetch it
      await live.stop('ring-state');
      while (live.vq.popUsed()); // what the device finished before STOP showed (drain mode)
      const snapshot = live.d.snapshot();
      const forgotten = await live.d.reinit(snapshot, { timeoutMs: half(ctx) });
      for (const _ of forgotten.get(live.vq.index) ?? []) live.post();
      await live.request();
      return pass(`the device continued from the restored state${snapshot.deviceState ? ' (with its own saved state)' : ''}`);
    },
  },
  {
    id: 'state.suspend', section: '1.4 3.4', level: 'MUST', needs: { types: TYPES, features: [Feature.SUSPEND] },
    clause: 'once the driver sets SUSPEND, the device shows it (within a bound); clearing it resumes the device',
    does: 'suspends after a request (bounded), resumes, and completes another request',
    async run(ctx) {
      const live = await bringUp(ctx);
      const ms = await live.stop('suspend');
      await live.d.resume(half(ctx));
      await live.request();
      return pass(`SUSPEND shown after ${ms.toFixed(2)} ms; resumed`);
    },
  },
];

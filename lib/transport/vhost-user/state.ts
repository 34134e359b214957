// The 'backend' stop/state facility of the vhost-user transport (docs/provisional-registers.md#other-stop-mechanisms, vhost-user.rst
// "Ring states"): GET_VRING_BASE stops a ring and returns its next available index (split: bits
// 0–15; packed: bits 0–14 avail index, 15 its wrap, 16–30 used index, 31 its wrap). For a split
// ring the used state is used->idx, read through the virtqueue (RingConf.ring). SET_VRING_BASE
// carries the state into a fresh session (the same back-end or another one): restore() sets it
// for the ring's next start, before DRIVER_OK.
//
// Requests in flight at GET_VRING_BASE: qemu-storage-daemon 7.2 (libvhost-user) answers at once
// with an index that counts requests it fetched but has not finished; it still carries them out
// (writes land on disk) but never publishes their completions (it closed the call fd, then logs
// "vu_panic: Error writing eventfd: Bad file descriptor" and drops every later used element).
// Their completions would be lost in a migration. So stopQueue (split) first lets the back-end
// finish what the driver made available (the driver's queues are paused: settle()), then sends
// GET_VRING_BASE, then checks (bounded) that used->idx reaches the answer; a back-end that keeps
// fetched requests unfinished fails the stop with E_STOP_TIMEOUT instead of losing them.

import { DeviceError, TimeoutError, UsageError } from '../../errors.js';
import type { StateContext, StateFacility, VqState } from '../state.js';
import type { Channel } from './channel.js';
import * as err from './errors.js';
import { Payload, Req } from './protocol.js';
import { drained, settle, type RingConf } from './rings.js';

/** What GET_VRING_BASE found, for reports and tests (the back-end's behaviour with requests in flight). */
export interface StopObservation {
  /** The virtqueue index. */
  queue: number;
  /** The driver's avail->idx when the stop began (virtio 1.2 §2.7.6). */
  availPublished: number;
  /** The device's used->idx when the stop began, before the back-end was let settle (§2.7.8). */
  usedBeforeSettle: number;
  /** How long the back-end took to settle, in ms. */
  settleMs: number;
  /** GET_VRING_BASE's answer: the next available index the back-end would fetch (vhost-user.rst). */
  availIdx: number;
  /** used->idx at the moment of that answer. */
  usedIdxAtReply: number;
  /** used->idx once the requests the back-end had fetched completed. */
  usedIdxAfterDrain: number;
  /** How long those fetched requests took to complete, in ms. */
  drainMs: number;
}

/** What the mechanism needs from the transport that owns the rings. */
export interface RingOwner {
  readonly address: string;
  /** Bound on the settle before GET_VRING_BASE and on the drain after it. */
  readonly drainTimeoutMs: number;
  ring(q: number): RingConf | undefined;
  running(q: number): boolean;
  /** GET_VRING_BASE answered: ring q runs no more. */
  stopped(q: number): void;
  packed(): boolean;
  /** The live session's channel (throws the typed reason there is none). */
  channel(): Channel;
}

/** The 'backend' facility: the back-end stops each ring (in queue order) and hands back its state. */
export class BackendFacility implements StateFacility {
  /** See StateFacility.mechanism. */
  readonly mechanism = 'backend' as const;
  /** SET_VRING_BASE restores the back-end's indices. */
  readonly restoresIndices = true;
  /** The state is the back-end's own report (GET_VRING_BASE), checked against the rings. */
  readonly ringDerived = false;
  /** One entry per GET_VRING_BASE of a split ring (what the back-end did with requests in flight). */
  readonly stops: StopObservation[] = [];
  private readonly last = new Map<number, VqState>();

  constructor(private readonly t: RingOwner) {}

  /** GET_VRING_BASE on every queue the driver has, in queue order (each bounded by the drain timeout). */
  async stop(ctx: StateContext): Promise<void> {
    this.last.clear();
    for (const q of ctx.queues) this.last.set(q, await this.stopQueue(q));
  }

  /** The state GET_VRING_BASE reported for queue q at the last stop. Throws E_STATE_NOT_STOPPED before one. */
  read(_ctx: StateContext, q: number): VqState {
    const s = this.last.get(q);
    if (!s) throw new DeviceError('E_STATE_NOT_STOPPED', `${this.t.address}: queue ${q} has not been stopped (GET_VRING_BASE)`);
    return s;
  }

  /** SET_VRING_BASE for the next start of ring q (between FEATURES_OK and DRIVER_OK). Throws E_BAD_STATE for a ring not configured. */
  restore(q: number, s: VqState): void {
    const conf = this.t.ring(q);
    if (!conf) throw new UsageError('E_BAD_STATE', `${this.t.address}: queue ${q} is not configured`);
    if (this.t.packed()) {
      conf.base = ((s.avail & 0xffff) | ((s.used & 0xffff) << 16)) >>> 0;
    } else {
      conf.base = s.avail & 0xffff;
      // A split ring's used state lives in ring memory (the back-end reads used->idx at SET_VRING_ADDR).
      conf.used = s.used & 0xffff;
    }
  }

  private async stopQueue(q: number): Promise<VqState> {
    const { address, drainTimeoutMs: limit } = this.t;
    const conf = this.t.ring(q);
    if (!conf || !this.t.running(q)) throw new UsageError('E_BAD_STATE', `${address}: queue ${q} is not running`);
    const ring = this.t.packed() ? null : conf.ring ?? null;
    const availBefore = ring?.availIdx() ?? -1;
    const usedBefore = ring?.usedIdx() ?? -1;
    const ch = this.t.channel();
    const gone = (): boolean => ch.failed !== null;
    const settleStart = Date.now();
    if (ring) await settle(ring, limit, gone);
    const settleMs = Date.now() - settleStart;
    if (ch.failed) throw ch.failed;
    const answer = await ch.ask(Req.GET_VRING_BASE, Payload.state(q, 0), [8]);
    const v = new DataView(answer.buffer, answer.byteOffset, 8);
    const index = v.getUint32(0, true);
    const num = v.getUint32(4, true);
    if (index !== q) throw ch.abort(err.protocol(address, `GET_VRING_BASE for ring ${q} answered ring ${index}`));
    this.t.stopped(q);
    let state: VqState;
    if (!ring) {
      state = { avail: num & 0xffff, used: (num >>> 16) & 0xffff };
    } else {
      const avail = num & 0xffff;
      const usedAtReply = ring.usedIdx();
      const t0 = Date.now();
      if (!(await drained(ring, avail, limit, gone))) {
        if (ch.failed) throw ch.failed;
        const used = ring.usedIdx();
        // The ring is stopped with requests the back-end fetched and will not complete where we
        // can see it (libvhost-user drops completions once GET_VRING_BASE closed the call fd): the
        // session cannot go on, and those requests must not wait for ever. Ending it tells the
        // onLost listeners, which reject every pending request with this error.
        throw ch.abort(new TimeoutError('E_STOP_TIMEOUT',
          `${address}: ring ${q} stopped at available index ${avail}, but ${(avail - used) & 0xffff} fetched request(s) did not complete within ${limit} ms (used->idx ${used})`,
          'the back-end is stuck on I/O; its requests would be lost in a migration — retry later or with a longer drain timeout (vhost-user:PATH?drain=MS)'));
      }
      state = { avail, used: ring.usedIdx() };
      this.stops.push({
        queue: q, availPublished: availBefore, usedBeforeSettle: usedBefore, settleMs,
        availIdx: avail, usedIdxAtReply: usedAtReply, usedIdxAfterDrain: state.used, drainMs: Date.now() - t0,
      });
    }
    this.last.set(q, state);
    return state;
  }
}

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
// fetched requests unfinished fails the stop with E_STOP_TIMEOUT instead of losing them. The answer
// is checked against the rings first: an index beyond what the driver made available (or behind
// what the back-end completed) is E_DEVICE_BAD_STATE at once. The whole stop ends within the
// caller's timeoutMs + STOP_REPLY_MARGIN_MS; a back-end silent past it (stalled, SIGSTOPped) ends
// the session with E_STOP_TIMEOUT — the device fails, never left stopped behind the caller's back.

import { DeviceError, TimeoutError, UsageError, type UvirtioError } from '../../errors.js';
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
  /** Bound (ms) on the settle before GET_VRING_BASE and on the drain after it, within the stop's own bound. */
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

  /**
   * GET_VRING_BASE on every queue the driver has, in queue order, the whole stop bounded by
   * timeoutMs (+ STOP_REPLY_MARGIN_MS for the last answer and drain): each ring's settle ends by
   * the stop's deadline (and the drain= bound), its GET_VRING_BASE answer and its drain by the
   * deadline plus the margin. Rejects E_STOP_TIMEOUT when the bound runs out (the session is then
   * ended: the device fails and its requests settle with that error), E_DEVICE_BAD_STATE for an
   * answer the rings rule out, and the channel's errors (E_VHOST_LOST, …).
   */
  async stop(ctx: StateContext, timeoutMs: number): Promise<void> {
    this.last.clear();
    const bound: StopBound = { timeoutMs, deadline: Date.now() + timeoutMs };
    for (const q of ctx.queues) this.last.set(q, await this.stopQueue(q, bound));
  }

  /** The state GET_VRING_BASE reported for queue q at the last stop. Throws E_STATE_NOT_STOPPED before one. */
  read(_ctx: StateContext, q: number): VqState {
    const s = this.last.get(q);
    if (!s) throw new DeviceError('E_STATE_NOT_STOPPED', `${this.t.address}: queue ${q} has not been stopped (GET_VRING_BASE)`,
      'stop() the device first (mechanism backend); its state is read only while it is stopped');
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

  private async stopQueue(q: number, bound: StopBound): Promise<VqState> {
    const { address, drainTimeoutMs } = this.t;
    const conf = this.t.ring(q);
    if (!conf || !this.t.running(q)) throw new UsageError('E_BAD_STATE', `${address}: queue ${q} is not running`);
    const ring = this.t.packed() ? null : conf.ring ?? null;
    const availBefore = ring?.availIdx() ?? -1;
    const usedBefore = ring?.usedIdx() ?? -1;
    const ch = this.t.channel();
    const gone = (): boolean => ch.failed !== null;
    /** What is left of the stop's bound (ms); `margin` adds STOP_REPLY_MARGIN_MS. */
    const left = (margin = false): number => Math.max(0, bound.deadline + (margin ? STOP_REPLY_MARGIN_MS : 0) - Date.now());
    const settleStart = Date.now();
    if (ring) await settle(ring, Math.min(drainTimeoutMs, left()), gone);
    const settleMs = Date.now() - settleStart;
    if (ch.failed) throw ch.failed;
    const answer = await withinStop(ch, ch.ask(Req.GET_VRING_BASE, Payload.state(q, 0), [8]), left(true), () => {
      const pid = ch.stoppedPeer();
      return new TimeoutError('E_STOP_TIMEOUT',
        `${address}: ring ${q}: no answer to VHOST_USER_GET_VRING_BASE within the stop's ${bound.timeoutMs} ms (+ ${STOP_REPLY_MARGIN_MS} ms)${pid !== null ? `: the back-end process (pid ${pid}) is stopped` : ''}`,
        `the back-end is stalled (${pid !== null ? `let it run again: kill -CONT ${pid}` : 'stuck on I/O, or too busy'}); the session was ended and the device failed: recover() (or reopen) it, and stop again — with a larger timeoutMs (--timeout) if the back-end is only slow`);
    });
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
      const published = ring.availIdx();
      // The back-end's next available index lies between what it completed and what the driver
      // published (virtio 1.2 §2.7.6, §2.7.8): anything else is state the rings rule out, and no
      // wait can make it true.
      if (((avail - usedAtReply) & 0xffff) > ((published - usedAtReply) & 0xffff)) {
        throw ch.abort(new DeviceError('E_DEVICE_BAD_STATE',
          `${address}: ring ${q}: GET_VRING_BASE answered available index ${avail}, but the driver made available up to ${published} and the back-end completed up to ${usedAtReply} (used->idx)`,
          'the back-end reports ring state that cannot be true; its session was ended and the device failed — no snapshot can be taken from it: check the back-end, then recover() (or reopen)'));
      }
      const t0 = Date.now();
      const drainMs = Math.min(drainTimeoutMs, left(true));
      if (!(await drained(ring, avail, drainMs, gone))) {
        if (ch.failed) throw ch.failed;
        const used = ring.usedIdx();
        const byStop = drainMs < drainTimeoutMs;
        // The ring is stopped with requests the back-end fetched and will not complete where we
        // can see it (libvhost-user drops completions once GET_VRING_BASE closed the call fd): the
        // session cannot go on, and those requests must not wait for ever. Ending it tells the
        // onLost listeners, which reject every pending request with this error.
        throw ch.abort(new TimeoutError('E_STOP_TIMEOUT',
          `${address}: ring ${q} stopped at available index ${avail}, but ${(avail - used) & 0xffff} fetched request(s) did not complete ${byStop ? `within the stop's ${bound.timeoutMs} ms (+ ${STOP_REPLY_MARGIN_MS} ms)` : `within ${drainTimeoutMs} ms`} (used->idx ${used})`,
          `the back-end is stuck on I/O; its requests would be lost in a migration — retry later or with a longer ${byStop ? 'stop timeout (timeoutMs, --timeout)' : 'drain timeout (vhost-user:PATH?drain=MS)'}`));
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

/** A stop's bound: its timeoutMs and the deadline (ms since the epoch) it sets. */
interface StopBound {
  timeoutMs: number;
  deadline: number;
}

/**
 * How far past the stop's timeoutMs a GET_VRING_BASE answer, and the drain after it, may come
 * (ms): a settle that took the whole bound still leaves a responsive back-end time to answer.
 * A stop ends within timeoutMs + this.
 */
export const STOP_REPLY_MARGIN_MS = 500;

/**
 * `answer`, or — when it has not come within `ms` — the session ended with `expired()` (the
 * channel fails with it, so `answer` and every other wait reject with it). A back-end that never
 * answers cannot be left mid-stop: nobody knows whether its ring stopped.
 */
async function withinStop<T>(ch: Channel, answer: Promise<T>, ms: number, expired: () => UvirtioError): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([answer, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(ch.abort(expired())), ms);
    })]);
  } finally {
    clearTimeout(timer);
  }
}

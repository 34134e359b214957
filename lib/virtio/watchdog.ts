// The request watchdog of a QueueSet: while requests are in flight on a live device it looks, every
// `period` ms, at
//   - the status register: DEVICE_NEEDS_RESET or FAILED (virtio 1.2 §2.1.2) fails the device even
//     when no configuration interrupt announced it (polling, or a device that sends none);
//   - each queue's used ring: a used element that no interrupt announced is taken — receive queues
//     included, or a lost interrupt would stall reception. On a queue whose completions come by
//     interrupt it is taken (and counted as a missed interrupt) only when it was already there at
//     the previous look and nothing completed in between: an interrupt on its way is not a missed
//     one (in an emulated VM the signal reaches the driver 100 µs and more after the used element,
//     so taking at first sight found one at nearly every look of a healthy device);
//   - progress: a draining queue with requests in flight that saw no used element since the last
//     look is notified again (a nudge: a device that missed a notification, or asked for one at a
//     descriptor the driver had already passed, would otherwise wait for ever; a spurious
//     notification is always allowed), once and then every NUDGE_REPEAT_MS while it stays still;
//     one whose requests saw no used element for requestTimeoutMs fails the device with
//     E_DEVICE_UNRESPONSIVE. Receive queues (drains: false) are neither nudged nor timed: their
//     buffers wait on outside events.
//
// The timer runs only while something is pending (a queue becoming busy arms it, an idle look
// disarms it). It keeps the process alive while a draining queue has requests pending — a request
// waiting on a silent device is settled by it, not abandoned when the event loop empties — but not
// for receive buffers alone, which wait on the network for as long as the driver is open.

import { DeviceError } from '../errors.js';
import type { VirtioDevice } from './device.js';
import type { RequestQueue } from './request-queue.js';

/** Counters a QueueSet's request watchdog keeps over the device's life (read through QueueSet.stats). */
export interface WatchdogStats {
  /**
   * Used elements the watchdog took on queues that have interrupts, after they had waited a whole
   * period with no interrupt taking anything (interrupts that never came).
   */
  missedInterrupts: number;
  /**
   * Notifications the watchdog sent again to a queue whose chains in flight made no progress
   * between two looks (a device waiting for a notification it missed or mis-asked for). A device
   * that is merely slow gets one per NUDGE_REPEAT_MS of its silence.
   */
  nudges: number;
}

/** How often a still queue is notified again after its first nudge (ms). */
const NUDGE_REPEAT_MS = 1000;

export class Watchdog {
  readonly stats: WatchdogStats = { missedInterrupts: 0, nudges: 0 };
  private timer: NodeJS.Timeout | null = null;
  private lastLook = 0;
  /** Per queue: its completions at the last look, for how long they have not moved, and when (in stalledMs) it is nudged next. */
  private readonly progress = new Map<number, { completions: number; stalledMs: number; nudgeAtMs: number }>();
  /** Per interrupt-driven queue with used elements not yet announced at the last look: its completions then. */
  private readonly unannounced = new Map<number, number>();

  constructor(
    private readonly device: VirtioDevice,
    private readonly queues: ReadonlyMap<number, RequestQueue<unknown>>,
  ) {}

  /** How often it looks: an eighth of the request timeout, between 5 and 100 ms. */
  get periodMs(): number {
    return Math.max(5, Math.min(100, Math.floor(this.device.requestTimeoutMs / 8)));
  }

  /**
   * Something became pending: make sure the watchdog is looking. `draining`: on a queue whose
   * requests must complete (not receive buffers), so the process must stay alive until they settle
   * — a timer a look unref'd while only receive buffers were pending is ref'd again.
   */
  arm(draining: boolean): void {
    if (this.timer) {
      if (draining) this.timer.ref();
      return;
    }
    this.lastLook = Date.now();
    this.timer = setInterval(() => this.look(), this.periodMs);
  }

  /** After a stop: used elements seen unannounced before it say nothing about the device now (the stall clock goes on). */
  forgetUnannounced(): void {
    this.unannounced.clear();
  }

  disarm(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.progress.clear();
    this.unannounced.clear();
  }

  private look(): void {
    const now = Date.now();
    const elapsed = now - this.lastLook;
    this.lastLook = now;
    if (this.device.phase === 'live') this.device.pollHealth();
    // Stopped, failed or closed: nothing is expected of the device (restarting re-arms).
    if (this.device.phase !== 'live') {
      this.disarm();
      return;
    }
    let anything = false;
    let requests = false;
    for (const [q, rq] of this.queues) {
      if (rq.pending === 0) {
        this.progress.delete(q);
        this.unannounced.delete(q);
        continue;
      }
      anything = true;
      if (rq.vq.inFlight === 0) continue;
      if (this.leftForItsInterrupt(q, rq)) {
        // The device did its work, so not a stall; the requests still hold the process alive (below).
        this.progress.delete(q);
        if (this.device.drains(q)) requests = true;
        continue;
      }
      // A receive queue's buffers wait on the network: stillness is normal there, so it is neither
      // nudged nor timed (its kicks still get the packed-ring guard, queue/packed.ts).
      if (!this.device.drains(q)) continue;
      requests = true;
      const seen = this.progress.get(q);
      if (!seen || seen.completions !== rq.completions) {
        this.progress.set(q, { completions: rq.completions, stalledMs: 0, nudgeAtMs: 0 });
        continue;
      }
      seen.stalledMs += elapsed;
      if (seen.stalledMs >= seen.nudgeAtMs && this.device.nudgeQueue(q)) {
        this.stats.nudges++;
        seen.nudgeAtMs = seen.stalledMs + NUDGE_REPEAT_MS;
      }
      if (seen.stalledMs >= this.device.requestTimeoutMs) {
        this.disarm();
        this.device.markFailed(new DeviceError('E_DEVICE_UNRESPONSIVE',
          `${this.device.address}: queue ${q} has ${rq.vq.inFlight} request(s) in flight and the device returned none for ${seen.stalledMs} ms (request timeout ${this.device.requestTimeoutMs} ms)`,
          'the device stopped answering: it was reset and its requests rejected (it may or may not have carried them out); recover() re-initialises it, or raise requestTimeoutMs'));
        return;
      }
    }
    if (!anything) this.disarm();
    else if (requests) this.timer?.ref();
    else this.timer?.unref();
  }

  /**
   * Takes what queue `q`'s used ring holds that no interrupt announced, and returns false; or
   * returns true, taking nothing, when its interrupt may still be on its way: on a queue whose
   * completions come by interrupt, an element seen for the first time is left for one period, and
   * one still there at the next look with nothing completed since is taken and counted as missed.
   * Under polling or poll-then-sleep's suppression no interrupt is due: taken at once, not counted.
   */
  private leftForItsInterrupt(q: number, rq: RequestQueue<unknown>): boolean {
    const seenAt = this.unannounced.get(q);
    this.unannounced.delete(q);
    if (this.device.interruptMode !== 'msix' || !this.device.queueHasInterrupts(q) || rq.notificationsSuppressed) {
      rq.processUsed();
      return false;
    }
    if (!rq.vq.usedPending()) return false;
    if (seenAt !== rq.completions) {
      this.unannounced.set(q, rq.completions);
      return true;
    }
    this.stats.missedInterrupts += rq.processUsed();
    return false;
  }
}

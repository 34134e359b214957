// Poll-then-sleep for one RequestQueue with interrupts (OpenOptions.hybridPollUs): after each kick
// the used ring is polled on every turn of the event loop with used-buffer notifications
// suppressed (virtio 1.2 §2.7.7 / §2.8.10), until the window passes with nothing completed (each
// completion opens it again); then notifications are enabled and the ring checked once more, so a
// completion that raced the enable is not left waiting (§2.7.10).

import { checkPollBudget, spinForUsed, turnBudget, type PollBudget } from './busy-poll.js';
import type { Virtqueue } from './queue/types.js';

/**
 * The interrupt-driven delivery of one queue: poll-then-sleep (its RequestQueue calls open() at
 * each kick) and the interrupt's own work, which takes at most a budget of used elements per turn
 * (interrupted(); OpenOptions.pollBudget, as a NAPI poll scheduled by an interrupt).
 */
export class HybridPoll {
  /** The window (ms; 0: off) and, while a window is open, when it closes (performance.now()). */
  private windowMs = 0;
  /** OpenOptions.pollSpinUs: how long a tick that finds nothing spins on the used index (µs). */
  private spinUs = 0;
  /** OpenOptions.pollBudget: the most used elements one tick takes (busy-poll.ts). */
  private budget: PollBudget = 0;
  private until = 0;
  private timer: NodeJS.Immediate | null = null;
  /** Whether the device's used-buffer notifications are suppressed now. */
  private suppressed = false;
  /** The rest of an interrupt's work, on a following turn (the budget left some). */
  private rest: NodeJS.Immediate | null = null;

  /**
   * @param vq the queue whose notifications are suppressed and enabled.
   * @param processUsed takes what the device returned, at most `max` (default all); returns how many.
   * @param live false while the queue is failed or halted (its owner re-picks delivery later).
   */
  constructor(
    private readonly vq: Pick<Virtqueue<unknown>, 'inFlight' | 'disableInterrupts' | 'enableInterrupts' | 'usedPending'>,
    private readonly processUsed: (max?: number) => number,
    private readonly live: () => boolean,
  ) {}

  /** Whether a window is set (poll-then-sleep is on). */
  get on(): boolean {
    return this.windowMs > 0;
  }

  /** Whether notifications are suppressed now (completions are polled for, not announced). */
  get notificationsSuppressed(): boolean {
    return this.suppressed;
  }

  /**
   * Sets the window, µs (0: off), as delivery is (re)chosen, with notifications just enabled or
   * disabled for good; a tick that finds nothing spins up to `spinUs` µs, and a tick takes at
   * most `budget` used elements (busy-poll.ts). The check after the window closes takes all.
   */
  set(windowUs: number, spinUs = 0, budget: PollBudget = 0): void {
    this.budget = checkPollBudget(budget, 'the polling budget');
    this.windowMs = windowUs / 1000;
    this.spinUs = Math.min(spinUs, windowUs);
    this.suppressed = false;
    if (windowUs === 0) this.end(false);
  }

  /**
   * The queue's interrupt came: takes at most the budget of used elements now and the rest on
   * following turns of the event loop, so that what the completions resubmit reaches the device
   * while the rest wait (busy-poll.ts). A turn already queued for the rest takes the new ones too.
   * Under EVENT_IDX the device sends no interrupt while elements wait (used_event stays at the
   * first one not taken), so the turns go on until the used ring is empty.
   */
  interrupted(): void {
    // A failed or halted queue takes all at once, as it always did: what a failing device finished is done.
    if (!this.live()) this.processUsed();
    else if (!this.rest) this.takeSome();
  }

  private readonly takeSome = (): void => {
    this.rest = null;
    // Halted or closed since: its owner takes the ring (before the reset; the ring may be freed after).
    if (!this.live()) return;
    this.processUsed(turnBudget(this.budget, this.vq.inFlight));
    if (this.live() && this.vq.usedPending()) this.rest = setImmediate(this.takeSome);
  };

  /** A kick is about to notify: suppress first (the device may finish before the notify returns), then poll. */
  open(): void {
    this.until = performance.now() + this.windowMs;
    if (!this.suppressed) {
      this.vq.disableInterrupts();
      this.suppressed = true;
    }
    this.timer ??= setImmediate(() => this.tick());
  }

  private tick(): void {
    this.timer = null;
    if (!this.live()) return;
    const max = turnBudget(this.budget, this.vq.inFlight);
    const took = this.processUsed(max) > 0 || (this.live() && this.vq.inFlight > 0 && spinForUsed(this.vq, this.spinUs) && this.processUsed(max) > 0);
    // Nothing in flight: nothing to be notified of; notifications stay suppressed until the window
    // closes on a chain in flight (the next kick opens it again).
    if (!this.live() || this.vq.inFlight === 0) return;
    const now = performance.now(); // once per tick: in a TCG guest a clock read costs 3–4 µs
    if (took) this.until = now + this.windowMs;
    if (now < this.until) {
      this.timer ??= setImmediate(() => this.tick());
      return;
    }
    this.end(true);
  }

  /** Closes the window: notifications again (and one more look when `recheck`: §2.7.10's race). */
  end(recheck: boolean): void {
    if (this.timer) {
      clearImmediate(this.timer);
      this.timer = null;
    }
    if (!this.suppressed) return;
    this.suppressed = false;
    if (recheck && !this.vq.enableInterrupts()) this.processUsed();
  }
}

// Polling delivery for one RequestQueue (a queue without an interrupt vector, or
// OpenOptions.interrupts 'poll'): the used ring is looked at on every turn of the event loop
// (setImmediate) while requests are pending, with used-buffer notifications suppressed (virtio 1.2
// §2.7.7 / §2.8.10, set by the owner).
//
// A turn that finds nothing may first spin on the used index for up to OpenOptions.pollSpinUs:
// each turn of Node's loop costs a poll(2) of the loop's own fds and the timer and immediate
// queues, which in a TCG guest is several times a plain read of ring memory, so a request that
// completes within the spin is noticed without those turns (measured in bench/README.md). The
// spin reads the clock only every SPIN_CHECKS_PER_CLOCK_READ looks: in a TCG guest a clock read
// costs 3–4 µs whether the clocksource is the HPET or the TSC (bench/README.md), hundreds of ring reads.
//
// A turn takes at most a budget of used elements (OpenOptions.pollBudget), then yields: the
// completions' callbacks and promise reactions run, their resubmissions become available and the
// device is notified while the driver takes the rest on the next turn. Taking all at once kept
// driver and device in lock step on one queue (the device idle while the driver handled a whole
// round of completions, the driver spinning while the device served the next round): on one queue
// at QD32 in the test VM, half of what is in flight per turn was 1.4–1.6× taking all
// (bench/README.md, bench:vm). The same idea as a NAPI poll's budget in Linux; the work an
// interrupt starts takes the same budget (HybridPoll.interrupted, hybrid-poll.ts).

import type { Virtqueue } from './queue/types.js';
import { checkValue, int, type OptionSpec } from '../util/options.js';

/**
 * OpenOptions.pollBudget: the most used elements one polling turn takes. 'half': half of the
 * chains in flight at the turn's start, at least POLL_BUDGET_FLOOR; a positive integer: that many;
 * 0: no cap (all there are).
 */
export type PollBudget = number | 'half';

/** The least a 'half' budget takes per turn (below it a second turn costs more than it overlaps). */
export const POLL_BUDGET_FLOOR = 16;

/** The largest fixed PollBudget (the largest queue a transport offers). */
export const MAX_POLL_BUDGET = 65_536;

/** A PollBudget: 'half', or an integer from 0 to MAX_POLL_BUDGET (the SDK's option spec, lib/util/options.ts). */
export const POLL_BUDGET: OptionSpec<PollBudget> = {
  expects: `'half' or an integer from 0 to ${MAX_POLL_BUDGET}`,
  parse: (text) => (text === 'half' ? 'half' : int(0, MAX_POLL_BUDGET).parse(text)),
  fits: (v): v is PollBudget => v === 'half' || int(0, MAX_POLL_BUDGET).fits(v),
};

/**
 * `value` when it is a PollBudget; throws E_INVALID_ARGUMENT (UsageError) naming `name`
 * otherwise (a turn with no usable budget would take nothing and poll for ever).
 */
export function checkPollBudget(value: unknown, name: string): PollBudget {
  return checkValue(POLL_BUDGET, value, name,
    "'half' (the default off the driver's thread) lets resubmissions reach the device while the rest of a round is taken; 0 takes all per turn");
}

/** The cap for one turn of a queue with `inFlight` chains in flight (Infinity: no cap). */
export function turnBudget(budget: PollBudget, inFlight: number): number {
  if (budget === 'half') return Math.max(POLL_BUDGET_FLOOR, Math.ceil(inFlight / 2));
  return budget === 0 ? Infinity : budget;
}

/** Looks at the used index between two reads of the clock while spinning. */
const SPIN_CHECKS_PER_CLOCK_READ = 256;

/**
 * Spins until `vq` has a used element to take, or `spinUs` µs have passed (0: never spins).
 * Returns whether one is there. Blocks the event loop for at most `spinUs` µs plus
 * SPIN_CHECKS_PER_CLOCK_READ looks at the used index.
 */
export function spinForUsed(vq: Pick<Virtqueue<unknown>, 'usedPending'>, spinUs: number): boolean {
  if (spinUs <= 0) return false;
  const deadline = performance.now() + spinUs / 1000;
  for (;;) {
    for (let i = 0; i < SPIN_CHECKS_PER_CLOCK_READ; i++) if (vq.usedPending()) return true;
    if (performance.now() >= deadline) return false;
  }
}

/** The polling state of one queue; its RequestQueue calls schedule() whenever requests may be pending. */
export class BusyPoll {
  private spinUs = 0;
  private budget: PollBudget = 0;
  private running = false;
  private timer: NodeJS.Immediate | null = null;

  /**
   * @param vq the queue whose used index the spin reads.
   * @param processUsed takes what the device returned, at most `max`; returns how many.
   * @param wanted whether a turn is worth scheduling now (requests pending, queue live).
   */
  constructor(
    private readonly vq: Pick<Virtqueue<unknown>, 'usedPending' | 'inFlight'>,
    private readonly processUsed: (max: number) => number,
    private readonly wanted: () => boolean,
  ) {}

  /** Whether polling is on. */
  get on(): boolean {
    return this.running;
  }

  /**
   * Polls on every turn of the event loop while wanted(), spinning up to `spinUs` µs in a turn
   * that finds nothing, taking at most `budget` used elements per turn (see PollBudget).
   */
  start(spinUs: number, budget: PollBudget = 0): void {
    this.budget = checkPollBudget(budget, 'the polling budget');
    this.spinUs = spinUs;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearImmediate(this.timer);
    this.timer = null;
  }

  /** Makes sure a turn is scheduled when polling is on and wanted(). */
  schedule(): void {
    if (!this.running || this.timer || !this.wanted()) return;
    this.timer = setImmediate(this.turn);
  }

  private readonly turn = (): void => {
    this.timer = null;
    const max = turnBudget(this.budget, this.vq.inFlight);
    if (this.processUsed(max) === 0 && this.wanted() && spinForUsed(this.vq, this.spinUs)) this.processUsed(max);
    this.schedule();
  };
}

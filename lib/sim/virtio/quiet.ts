// The quiet states of the reference device (docs/provisional-registers.md): STOP (the proposal, RING_STATE)
// and SUSPEND (virtio 1.4 §3.4). On either the device stops fetching at once; it then finishes what
// it fetched — always for SUSPEND, in 'drain' mode for STOP, while 'hold' mode keeps those requests
// for the DEVICE_STATE mailbox — and shows the bit one setImmediate later, after its used elements
// and interrupts. From then on it reads and writes no ring memory and sends no interrupt until a
// reset (STOP) or a resume (SUSPEND). device.ts owns the phase; this file moves it.

import { Status } from '../../spec/index.js';
import type { QuietPhase } from './common-cfg.js';
import type { QueueEngine } from './engine.js';
import type { StickyFault } from './faults.js';
import type { DeviceModel } from './model.js';
import type { SimQueue } from './queue.js';
import type { RuleId } from './rules.js';
import type { StopMode } from './types.js';

/** What the quiet-state logic needs from the device (device.ts). */
export interface QuietHost {
  /** Running, or on its way to / in STOP or SUSPEND. */
  phase: QuietPhase;
  readonly queues: readonly SimQueue[];
  readonly model: DeviceModel;
  /** device_status (virtio 1.2 §2.1): STOP or SUSPEND is shown here. */
  readonly common: { status: number };
  readonly engine: QueueEngine;
  /** The device was closed: nothing scheduled may run any more. */
  readonly isClosed: boolean;
  /** Completes every request held in flight (except a hung queue's); returns how many. */
  completeNow(): number;
  /** Runs work; a broken driver rule or any error puts the device in DEVICE_NEEDS_RESET. */
  guarded(work: () => void): void;
  /** Fault completion-silence on queue `q`. */
  silenced(q: number): boolean;
  /** A sticky fault in force (for queue `q`). */
  sticky(kind: StickyFault, q?: number): boolean;
  /** Sends queue `q`'s used-buffer interrupt whatever the ring says (fault interrupt-after-stop). */
  signalQueue(q: SimQueue): void;
  violation(rule: RuleId, message: string, queue?: number): void;
}

/** STOP / SUSPEND: requested, settled (drained or held), shown; or held back by a fault. */
export class QuietStates {
  /** Bumped on reset, so settle steps scheduled before it do nothing after it. */
  private epoch = 0;
  /** A STOP or SUSPEND that cannot finish yet (stop-stuck, or draining a hung queue). */
  private pending: 'stop' | 'suspend' | undefined;

  /** `stopMode`: what STOP does with fetched requests ('drain' or 'hold'); SUSPEND always drains. */
  constructor(private readonly host: QuietHost, private readonly stopMode: StopMode) {}

  /** A reset was written: settle steps scheduled so far are void. */
  invalidate(): void {
    this.epoch++;
  }

  /** The reset completed: no STOP or SUSPEND is pending any more. */
  reset(): void {
    this.pending = undefined;
  }

  /** STOP or SUSPEND requested: stop fetching now; finish (or hold), then show the bit (settle). */
  begin(kind: 'stop' | 'suspend'): void {
    const host = this.host;
    host.phase = kind === 'stop' ? 'stopping' : 'suspending';
    // 1.4 §3.4.1: from now on the driver makes no buffer available; remember where it stood.
    if (kind === 'suspend') for (const q of host.queues) q.suspendMark = q.ring?.driverMark();
    // Completion timers would finish held requests behind the device's back; drain finishes them itself.
    host.engine.cancelTimers();
    this.settleSoon(kind);
  }

  /** virtio 1.4 §3.4: SUSPEND cleared, DRIVER_OK set again; re-check every queue for buffers made available meanwhile. */
  resume(): void {
    const host = this.host;
    host.phase = 'running';
    for (const q of host.queues) {
      if (q.ring && q.suspendMark !== undefined && q.ring.driverMark() !== q.suspendMark) {
        host.violation('avail-while-suspended', `queue ${q.index}: buffers were made available while the device was suspended`, q.index);
      }
      q.suspendMark = undefined;
      if (q.enabled) host.engine.schedule(q.index);
    }
  }

  /** Faults cleared: a held-back STOP / SUSPEND settles again; returns whether one was pending. */
  release(): boolean {
    const pending = this.pending;
    this.pending = undefined;
    if (pending) this.settleSoon(pending);
    return pending !== undefined;
  }

  private settleSoon(kind: 'stop' | 'suspend'): void {
    const epoch = this.epoch;
    setImmediate(() => this.settle(kind, epoch));
  }

  /**
   * Drains (SUSPEND, STOP in 'drain' mode) or holds, fills receive buffers with data already on
   * hand, then shows the bit a turn later — unless stop-stuck holds it back, or a hung queue
   * (completion-silence) cannot drain: then it waits for release().
   */
  private settle(kind: 'stop' | 'suspend', epoch: number): void {
    const host = this.host;
    if (epoch !== this.epoch || host.isClosed) return;
    const drains = kind === 'suspend' || this.stopMode === 'drain';
    if (drains) host.completeNow();
    // Data the device already has for the driver (net: frames on the cable) goes into receive
    // buffers already available, in either mode: it is finished work, not a fetched request.
    for (const q of host.queues) if (!host.model.fetchesRequests(q.index)) host.guarded(() => host.engine.receive(q));
    const hung = drains && host.queues.some((q) => q.state.inFlight.length > 0 && host.silenced(q.index));
    if (hung || host.sticky('stop-stuck')) {
      this.pending = kind;
      return;
    }
    // Shown one turn later: the used-buffer interrupts (microtasks) have been delivered by then.
    setImmediate(() => {
      if (epoch !== this.epoch || host.isClosed) return;
      if (kind === 'stop') {
        host.phase = 'stopped';
        host.common.status |= Status.STOP;
        if (host.sticky('interrupt-after-stop')) for (const q of host.queues) if (q.enabled) host.signalQueue(q);
      } else {
        host.phase = 'suspended';
        host.common.status = (host.common.status & ~Status.DRIVER_OK) | Status.SUSPEND;
      }
    });
  }
}

// QueueSet: a driver's queues on one VirtioDevice, each as a RequestQueue fed by its interrupt
// vector or by polling, and the choreography across all of them:
//   stop:    pause every RequestQueue (new requests wait), stop the device, collect what completed
//   reinit:  re-initialise the device (or a target) from the snapshot, notify every queue, unpause;
//            a refused reinit leaves everything paused for another attempt, unless no retry is
//            possible — then every pending request is rejected with the cause
//   resume:  leave the stop without a reset (SUSPEND, quiesce), notify, unpause
//   failure: the device failed (NEEDS_RESET, lost, unresponsive, a broken ring): refuse new
//            requests, reset the device, settle what it finished, reject the rest with the cause;
//            receive buffers (drains: false) are kept for recover()
//   recover: reset and re-initialise a failed device, post the kept receive buffers again
//   close:   reset the device and reject whatever is still pending
//
// Every request a RequestQueue accepted settles exactly once, within a bounded time of the device
// going quiet: the watchdog (watchdog.ts) turns silence into a failure.

import { VirtioDevice, QUEUE_OPTION_KEYS, type QueueOptions, type ReinitOptions, type StopOptions, type StopPreparation } from './device.js';
import { DeviceError, UsageError, UvirtioError } from '../errors.js';
import { RequestQueue, type RequestToken } from './request-queue.js';
import { requestsUse } from './request.js';
import type { DeviceSnapshot, Mechanism } from './snapshot/index.js';
import { Watchdog, type WatchdogStats } from './watchdog.js';
import { isInstance, shown, thrownMessage } from '../util/shown.js';
import { optionsObject, type OptionKeys } from '../util/options.js';

/** A queue's set-up in a QueueSet: its size and policy (QueueOptions; `onUsed` is the QueueSet's). */
export type QueueSetOptions = Omit<QueueOptions, 'onUsed'>;
/** QueueSetOptions' keys: QueueOptions' but `onUsed`; any other is refused (lib/util/options.ts optionsObject). */
const QUEUE_SET_OPTION_KEYS: OptionKeys<QueueSetOptions> = (({ onUsed: _, ...rest }) => rest)(QUEUE_OPTION_KEYS);

type Tokens = RequestToken<unknown>[];

/** Devices that have their QueueSet: one per device, since only it hears of the device's failures and closes it. */
const withQueueSet = new WeakSet<VirtioDevice>();

/**
 * A driver's queues on one {@link VirtioDevice}, each a {@link RequestQueue} driven by its interrupt
 * vector or by polling, with the choreography across them for stop/reinit/resume (provisional:
 * docs/provisional-registers.md#stopping-a-device), device failure and recover(), and close. A
 * watchdog fails a device that stops making progress (E_DEVICE_UNRESPONSIVE, after the device's
 * requestTimeoutMs) or shows DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) without an interrupt.
 */
export class QueueSet {
  private readonly queues = new Map<number, RequestQueue<unknown>>();
  private readonly watchdog: Watchdog;
  /** Receive buffers a failed device's reset rings forgot, by queue: posted again by recover(). */
  private readonly kept = new Map<number, Tokens>();
  /** The failure being handled (reset, settling); recover() and close() wait for it. */
  private handling: Promise<void> = Promise.resolve();
  private closed = false;
  /** What this set's close() rejects pending requests with, from the moment it is called. */
  private closeError: UvirtioError | undefined;
  /** The close() under way or done. */
  private closing: Promise<void> | undefined;
  /** Its queues are paused for a stop (from the pause until the device is live again): RequestQueue.resume() is refused meanwhile. */
  private stopping = false;

  /**
   * @param device the device whose queues this set owns; its failures are handled here from now on.
   * Throws E_INVALID_ARGUMENT when `device` is not a VirtioDevice (open one with
   * VirtioDevice.open(transport) first), E_BAD_STATE when the device has a QueueSet already (one
   * per device: add every queue to that one).
   */
  constructor(
    /** The device the queues live on. */
    readonly device: VirtioDevice,
  ) {
    if (!isInstance(device, VirtioDevice as unknown as abstract new () => VirtioDevice)) {
      throw new UsageError('E_INVALID_ARGUMENT', `a QueueSet needs a VirtioDevice, got ${shown(device)}`,
        'open the device first: new QueueSet(await VirtioDevice.open((await openTransport(address)).transport))');
    }
    if (withQueueSet.has(device)) {
      throw new UsageError('E_BAD_STATE', `${device.address}: the device has a QueueSet already`,
        'a device has one QueueSet, which handles its failures, stop and close: add every queue to that one (queueSet.add(index))');
    }
    withQueueSet.add(device);
    this.watchdog = new Watchdog(device, this.queues);
    device.onFailure((e) => {
      // If settling throws part-way (a transport gone under the reset), nothing may stay pending and
      // the chain must stay usable for the next failure, close() and recover(): reject what is left.
      this.handling = this.handling.then(() => this.settleFailure(e)).catch(() => this.rejectAll(e));
    });
    // fail() after a failure this set handled: recover() refuses the device now, so the receive
    // buffers kept for it are rejected (after the failure's settling, which fills `kept`).
    device.onGivenUp((e) => {
      this.handling = this.handling.then(() => {
        if (this.closed) return;
        for (const [q, rq] of this.queues) rq.settle(this.kept.get(q) ?? [], e);
        this.kept.clear();
      }).catch(() => this.rejectAll(e));
    });
    // Someone closed the device without this set's close() (a listener calling device.close()):
    // what was in flight comes back here, and everything pending settles as close() would settle it.
    // The same when the device was let go with reset(): its queues are forgotten, their chains come back here.
    // Also while this set's own close() is under way: a reset() that ran under it took the chains
    // back, and the device's close() after it finds no queue left to return them from — they are
    // settled here or never (settling a request twice does nothing: the first answer stands).
    device.onClose((orphans) => {
      const error = this.closeError ?? (this.device.phase === 'reset' ? resetWhilePending(this.device.address) : closedWhilePending(this.device.address));
      if (!this.closed) {
        this.closed = true;
        this.watchdog.disarm();
      }
      this.settleClosed(orphans as Map<number, Tokens>, error);
    });
  }

  /**
   * Sets up queue `index` on the device (before DRIVER_OK) and returns its RequestQueue. Throws
   * what VirtioDevice.setupQueue throws; E_INVALID_ARGUMENT as well for options that are not an
   * object (null, a number, a string, an array) or that have a key QueueSetOptions does not
   * (`onUsed` is the QueueSet's own).
   */
  add<T>(index: number, options: QueueSetOptions = {}): RequestQueue<T> {
    options = optionsObject(options, 'QueueSet.add options', QUEUE_SET_OPTION_KEYS);
    // The queue's policy goes to the device with its set-up; its used interrupts drive this RequestQueue.
    const rqs = this.queues;
    const vq = this.device.setupQueue<RequestToken<T>>(index, { ...options, onUsed: () => rqs.get(index)?.interrupted() });
    const rq = new RequestQueue<T>(vq);
    // Chains held back for a repost — receive buffers kept for recover(), chains a restarted ring
    // forgot that a reinit (or recover) under way or to be retried hands back — still use their
    // buffers: DmaAllocator.free() of them is refused (E_DMA_IN_USE) while the queue is open.
    vq.guardFree((iova, size) => {
      const end = iova + BigInt(size);
      return requestsUse(this.kept.get(index) ?? [], 0, iova, end, vq.size, `kept for recover() on queue ${index}`)
        ?? requestsUse(this.device.carriedTokens(index) as Tokens, 0, iova, end, vq.size, `held back on queue ${index} until the device is re-initialised`);
    });
    this.queues.set(index, rq as RequestQueue<unknown>);
    rq.onBusy = () => this.watchdog.arm(this.device.drains(index));
    rq.onFault = (e) => this.device.markFailed(e);
    rq.onResume = () => this.checkQueueResume(index);
    this.chooseDelivery(index, rq as RequestQueue<unknown>);
    return rq;
  }

  /** The RequestQueue set up by add() for queue `index`, or undefined when there is none. */
  get(index: number): RequestQueue<unknown> | undefined {
    return this.queues.get(index);
  }

  /** Missed interrupts the watchdog made up for. */
  get stats(): WatchdogStats {
    return this.watchdog.stats;
  }

  /**
   * RequestQueue.resume() of one of its queues: refused (E_BAD_STATE) while the queues are paused
   * for a stop or the device is stopped — requests let in then would reach a stopped device (a
   * notification a suspended device must not get, state that no longer matches the snapshot). The
   * device's own ways back are resume() and reinit(), which unpause the queues themselves.
   */
  private checkQueueResume(index: number): void {
    if (this.stopping || this.device.phase === 'stopped') {
      throw new UsageError('E_BAD_STATE', `${this.device.address}: queue ${index} cannot resume while the device is ${this.device.phase === 'stopped' ? 'stopped' : 'stopping'}`,
        'leave the stop through the device: QueueSet.resume() (the same device, where its mechanism allows) or QueueSet.reinit(snapshot); they let the waiting requests in');
    }
  }

  /** Interrupts where the queue has a vector (with poll-then-sleep when OpenOptions.hybridPollUs is set), else polling on every turn of the event loop. */
  private chooseDelivery(index: number, rq: RequestQueue<unknown>): void {
    if (this.device.queueHasInterrupts(index)) {
      rq.stopPolling();
      rq.vq.enableInterrupts();
      rq.setHybridPoll(this.device.hybridPollUs, this.device.pollSpinUs, this.device.pollBudget);
    } else {
      rq.setHybridPoll(0);
      rq.vq.disableInterrupts();
      rq.startPolling(this.device.pollSpinUs, this.device.pollBudget);
    }
  }

  /**
   * Stops the device with {@link VirtioDevice.stop}: once the device accepted the stop (inside its
   * one-operation lock), runs `prepare` (a driver's last work on live queues), pauses every queue
   * (new requests wait, in order) and has the device stop; then settles the requests it completed
   * on the way. Resolves with the mechanism used. Rejects with the device's error
   * (E_STATE_UNSUPPORTED, E_STOP_TIMEOUT, E_SUSPEND_TIMEOUT, E_DEVICE_NEEDS_RESET, E_BAD_STATE,
   * E_CLOSED). A stop refused at once changes nothing (another stop under way keeps its queues
   * paused); one that fails later unpauses the queues when the device is still live.
   */
  async stop(options: StopOptions = {}, prepare?: StopPreparation): Promise<Mechanism> {
    let accepted = false; // the device took the stop: the preparation ran (it may have paused queues of its own)
    try {
      const mechanism = await this.device.stop(options, async (deadline, signal) => {
        accepted = true;
        if (prepare) await prepare(deadline, signal);
        if (signal.aborted) return; // the stop gave up on this preparation (a timeout, a close): pause nothing
        this.stopping = true;
        for (const rq of this.queues.values()) rq.pause();
      });
      for (const rq of this.queues.values()) rq.processUsed();
      return mechanism;
    } catch (e) {
      if (accepted && this.device.phase === 'live') this.restart(false);
      throw e;
    }
  }

  /**
   * Re-initialises the device (or options.target) from the snapshot; chains a restarted ring
   * forgot are made available again. When the target refuses, the device stays stopped and the
   * requests stay paused for another attempt (on the source, or another target); when the device
   * failed for good (the refusing target had completed requests), what it completed is settled and
   * every other pending request is rejected with the error.
   */
  async reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<void> {
    let forgotten: Map<number, unknown[]>;
    try {
      forgotten = await this.device.reinit(snapshot, options);
    } catch (e) {
      if (this.device.phase === 'failed') this.abandon(e as UvirtioError);
      throw e;
    }
    // The device is live on rings it accepted: a queue a fault halted while stopped takes requests again.
    for (const rq of this.queues.values()) rq.revive();
    for (const [index, tokens] of forgotten) this.queues.get(index)?.repost(tokens as Tokens);
    this.restart(true);
  }

  /**
   * Leaves a stop without a reset ({@link VirtioDevice.resume}: SUSPEND clears, quiesce goes on),
   * notifies every queue and lets the waiting requests in. Rejects with the device's error, e.g.
   * E_STATE_UNSUPPORTED after STOP, which only reinit() leaves.
   */
  async resume(): Promise<void> {
    await this.device.resume();
    this.restart(true);
  }

  /**
   * Brings a failed device back (DEVICE_NEEDS_RESET, E_DEVICE_UNRESPONSIVE, a broken ring, a
   * transport that reconnects): reset, re-initialise with the same features and queues, post the
   * receive buffers again, accept requests again. Requests pending at the failure were rejected
   * then; retry them after this resolves. Rejects (the device stays failed) when the device does
   * not come back (E_RESET_TIMEOUT, E_FEATURES_NOT_OK, the transport's codes).
   */
  async recover(): Promise<void> {
    if (this.closed) throw new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`);
    await this.handling;
    const forgotten = await this.device.recover();
    for (const [q, rq] of this.queues) {
      const again = [...(this.kept.get(q) ?? []), ...((forgotten.get(q) ?? []) as Tokens)];
      rq.revive();
      rq.repost(again);
    }
    this.kept.clear();
    this.restart(true);
  }

  /** After the device is live again: re-pick interrupt or polling delivery, notify, unpause. */
  private restart(notify: boolean): void {
    // Used elements the watchdog saw unannounced before the stop say nothing about the device now.
    // Its stall clock goes on: a stop retried (and refused) again and again must not keep a hung
    // device from its request timeout.
    this.watchdog.forgetUnannounced();
    this.stopping = false;
    for (const [index, rq] of this.queues) {
      this.chooseDelivery(index, rq);
      if (notify) this.device.notifyQueue(index);
      rq.resume();
      rq.processUsed();
      if (rq.pending > 0) this.watchdog.arm(this.device.drains(index));
    }
  }

  /**
   * The device failed: no new requests; once it is reset, what it finished is settled, the chains
   * its rings still held are rejected with `error` (it may or may not have carried them out), and
   * receive buffers are kept for recover() — unless the device was given up on for good (fail()),
   * which recover() refuses: then they are rejected too.
   */
  private async settleFailure(error: UvirtioError): Promise<void> {
    if (this.closed) return;
    this.watchdog.disarm();
    for (const rq of this.queues.values()) rq.halt(error);
    await this.device.resetAfterFailure();
    if (this.closed) return;
    for (const rq of this.queues.values()) rq.processUsed();
    const forgotten = this.device.restartRings();
    // Given up on for good (fail()): recover() refuses it, so nothing is kept for one — receive
    // buffers are rejected with the rest, and their memory is the caller's again.
    const final = this.device.phase === 'failed';
    for (const [q, rq] of this.queues) {
      const tokens = (forgotten.get(q) ?? []) as Tokens;
      if (this.device.drains(q) || final) {
        rq.settle(tokens, error);
      } else {
        this.kept.set(q, [...(this.kept.get(q) ?? []), ...tokens]);
        rq.settle([], error, true);
      }
    }
  }

  /** Last resort after a failed settle: every request still pending is rejected with `error`. */
  private rejectAll(error: UvirtioError): void {
    for (const [q, rq] of this.queues) {
      rq.halt(error);
      // In flight too (a later reset that returns them again rejects settled promises: no effect).
      rq.settle(this.device.queue(q).inFlightTokens() as Tokens, error);
    }
  }

  /** No retry is possible: settle what the device completed, reject everything else with `error`. */
  private abandon(error: UvirtioError): void {
    for (const rq of this.queues.values()) {
      rq.halt(error);
      rq.processUsed();
    }
    const forgotten = this.device.restartRings();
    for (const [q, rq] of this.queues) rq.settle((forgotten.get(q) ?? []) as Tokens, error);
  }

  /**
   * Settles what the device already returned, resets and closes the device, then rejects every
   * request still pending — in flight, waiting for room, or kept for recover() — with `reason`
   * (default E_CLOSED). A `reason` that is not a UvirtioError (an Error, a string, …) is never
   * handed to a request as it is: the requests get E_CLOSED with the reason as its `cause`
   * (see closeReason in queue-set.ts). Idempotent.
   */
  close(reason?: UvirtioError): Promise<void> {
    // A second call while the first waits for the device's reset resolves with it, not before.
    return (this.closing ??= this.closeOnce(closeReason(reason, this.device.address)));
  }

  private async closeOnce(reason?: UvirtioError): Promise<void> {
    if (this.closed) {
      // Closed or reset() under it (onClose): settled there. A device let go with reset() is
      // closed too (it leaves the transport alone); a close() under way is waited for.
      await this.device.close();
      return;
    }
    this.closed = true;
    this.watchdog.disarm();
    const error = reason ?? closedWhilePending(this.device.address);
    this.closeError = error;
    for (const rq of this.queues.values()) rq.halt(error, true);
    // What the device already returned is done, not orphaned: a polling turn's budget may have
    // left some of it in the used ring (busy-poll.ts).
    for (const rq of this.queues.values()) rq.processUsed();
    await this.handling;
    this.settleClosed((await this.device.close()) as Map<number, Tokens>, error);
  }

  /** After the device's close: rejects the chains it took back, and those kept for recover(), with `error`; refuses what comes later. */
  private settleClosed(orphans: Map<number, Tokens>, error: UvirtioError): void {
    for (const [q, rq] of this.queues) {
      rq.halt(error, true);
      rq.settle([...(orphans.get(q) ?? []), ...(this.kept.get(q) ?? [])], error);
    }
    this.kept.clear();
    // What is submitted from now on never reached the device: say so, not what the pending ones got.
    const refused = new DeviceError('E_CLOSED', `${this.device.address}: the driver is closed`,
      'the request was not submitted; open the device again to use it');
    for (const rq of this.queues.values()) rq.halt(refused, true);
  }
}

/**
 * The error a close(reason) rejects pending requests with: `reason` itself when it is a
 * UvirtioError, undefined when none was given (the closer's default E_CLOSED), and otherwise —
 * an Error, a string, a number, a look-alike object, from JavaScript or `as never` — a DeviceError
 * E_CLOSED whose `cause` is the value, so that every request settles with a UvirtioError.
 */
export function closeReason(reason: unknown, address: string): UvirtioError | undefined {
  if (reason === undefined || isInstance(reason, UvirtioError)) return reason;
  return new DeviceError('E_CLOSED', `${address}: the driver was closed with this request pending (close reason: ${thrownMessage(reason)})`,
    'the request may or may not have been carried out; the close reason is this error\'s cause', { cause: reason });
}

/** E_CLOSED for a request still pending when its device was let go with VirtioDevice.reset(). */
function resetWhilePending(address: string): DeviceError {
  return new DeviceError('E_CLOSED', `${address}: the device was reset (VirtioDevice.reset()) with this request pending: it let go of its queues`,
    'the request may or may not have been carried out; open the transport again to use the device, and reset it only once its requests have settled');
}

/** E_CLOSED for a request still pending when its device was closed. */
function closedWhilePending(address: string): DeviceError {
  return new DeviceError('E_CLOSED', `${address}: the device was closed with this request pending`,
    'the request may or may not have been carried out; close the driver only once its requests have settled');
}

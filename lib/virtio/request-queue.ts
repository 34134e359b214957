// Requests as promises over one virtqueue.
//
// submit() adds a chain and kicks; the promise settles when the device returns the chain, which
// processUsed() notices (the transport calls it from an interrupt handler, or startPolling() does).
// When the ring is full, submitters wait in FIFO order for used buffers to free room; nothing is
// dropped. When the queue breaks, every pending and waiting request is rejected with the error and
// later submits are rejected at once.
//
// For stop/reinit: pause() holds new requests back (they wait, in order) while the device is
// stopped; repost() makes chains that a restarted ring forgot available again, in the order they
// were first submitted; resume() lets the waiting requests in.
//
// For device failure (QueueSet): halt() refuses new submits with the device's error while the
// device is reset; settle() rejects the chains the reset ring forgot and the requests waiting for
// room; revive() accepts submits again once the device is back (recover, reinit).
//
// Every request settles exactly once: the device returns it, or it is rejected (a broken queue,
// a failed or closed device). A chain the ring still holds is rejected only after the device that
// could write into its buffers was reset (QueueSet orders that), never while it may still use them.

import { DeviceError, RequestError, UvirtioError, VirtqueueError } from '../errors.js';
import type { Segment, Virtqueue } from './queue/types.js';
import { BusyPoll, type PollBudget } from './busy-poll.js';
import { HybridPoll } from './hybrid-poll.js';
import { Request, checkCallback, readRequests, promiseCallback, requestsUse, type Completion, type CompletionCallback, type RequestSpec, type RequestToken } from './request.js';
import { isInstance, thrownMessage } from '../util/shown.js';

export type { Completion, CompletionCallback, RequestSpec, RequestToken } from './request.js';

/**
 * Requests as promises over one virtqueue (virtio 1.2 §2.6): submit() adds a chain and kicks, the
 * promise resolves when the device returns it. A full ring is back-pressure, not an error: requests
 * wait in FIFO order for room. A queue whose ring the device broke rejects pending, waiting and later
 * requests with the {@link VirtqueueError}; a failed device's error ({@link UvirtioError}) is used
 * while it is halted. Every request settles exactly once.
 *
 * Two ways in, one completion path: submitCb() / submitManyCb() call a {@link CompletionCallback}
 * (no promise per request: the fast path), submit() / submitMany() return promises settled by such
 * a callback.
 */
export class RequestQueue<T = undefined> {
  /** Chains the device has returned so far (a watchdog compares it between looks). */
  completions = 0;
  /** Called when a submit finds nothing pending: the queue just became busy. */
  onBusy: (() => void) | undefined;
  /**
   * When set, a device that breaks this queue's ring protocol, or a notification the transport
   * cannot send, halts the queue and calls this, instead of breaking the queue (fail(): every
   * request rejected with E_QUEUE_BROKEN): the caller resets the device and then settles them (QueueSet).
   */
  onFault: ((e: UvirtioError) => void) | undefined;
  /**
   * Called by resume() before it lets anything in; what it throws refuses the resume, and the queue
   * stays paused. QueueSet sets it: E_BAD_STATE while its device is stopping or stopped.
   */
  onResume: (() => void) | undefined;
  /**
   * Gets what a completion callback (submitCb) threw, with the request's token. The queue goes on
   * either way: the request counts as settled and the other requests are settled as usual. Unset,
   * the exception is reported as a process warning (a {@link RequestError} E_CALLBACK_THREW with
   * the exception as its cause). What this handler throws is reported the same way.
   */
  onCallbackError: ((error: unknown, token: T) => void) | undefined;
  /** Requests waiting for room, oldest at `waitingHead`. */
  private waiting: RequestToken<T>[] = [];
  private waitingHead = 0;
  private addedSinceKick = false;
  /** A kickSoon() microtask is queued. */
  private kickScheduled = false;
  private failure: VirtqueueError | null = null;
  /** The device failed: submits are refused with this until revive(). */
  private halted: UvirtioError | null = null;
  private drainers: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private paused = false;
  private nextSeq = 0;
  /** Poll-then-sleep (hybrid-poll.ts). */
  private readonly hybrid: HybridPoll;
  /** Polling delivery (busy-poll.ts). */
  private readonly poll: BusyPoll;

  /** @param vq the virtqueue the requests travel on; this queue owns its tokens and its kicks. */
  constructor(
    /** The underlying virtqueue, carrying a {@link RequestToken} per chain. */
    readonly vq: Virtqueue<RequestToken<T>>,
  ) {
    this.hybrid = new HybridPoll(vq, (max) => this.processUsed(max), () => !this.failure && !this.halted);
    this.poll = new BusyPoll(vq, (max) => this.processUsed(max), () => !this.failure && !this.halted && this.pending > 0);
    // The requests waiting to be added use their segments' memory as much as those in flight:
    // DmaAllocator.free() of it is refused (E_DMA_IN_USE) through the virtqueue's guard, which
    // drops this check when the queue closes. It scans at free() time; submit() pays nothing.
    vq.guardFree((iova, size) => this.waitingUses(iova, size));
  }

  /** Requests added to the ring and not yet returned, plus those waiting for room. */
  get pending(): number {
    return this.vq.inFlight + this.waitingCount;
  }

  /** Whether poll-then-sleep has the device's used-buffer notifications suppressed now (completions are then polled for, not announced). */
  get notificationsSuppressed(): boolean {
    return this.hybrid.notificationsSuppressed;
  }

  /** The error that broke the queue, or null. */
  get error(): VirtqueueError | null {
    return this.failure;
  }

  /** The device error new submits are refused with while the device is being reset, or null. */
  get haltedBy(): UvirtioError | null {
    return this.halted;
  }

  /**
   * Adds one chain (device-readable segments, then device-writable ones) and kicks the device.
   * Resolves with the bytes the device wrote and `token` when the chain comes back. When the ring
   * is full the request waits, in order, for room. Rejects with the queue's {@link VirtqueueError}
   * when the queue is broken (or E_BAD_CHAIN when the chain can never fit, or a segment is not
   * inside the device's DMA memory: never allocated, freed, or past its region's end — nothing
   * reaches the ring), and with the device's
   * error while the device is halted.
   *
   * The segment arrays and their objects stay the caller's promise until the request settles: the
   * queue reads them when it adds the chain, which may be later (the request waited for room) and
   * again (a ring restarted by reinit() or recover() makes it available anew). Build a fresh array
   * per request rather than reusing one (as a kernel scatterlist stays valid until completion).
   */
  submit(readable: readonly Segment[], writable: readonly Segment[], token?: T): Promise<Completion<T>> {
    const done = new Promise<Completion<T>>((resolve, reject) => this.enqueue(readable, writable, token as T, promiseCallback(resolve, reject)));
    this.kick();
    return done;
  }

  /**
   * Adds every request that fits, kicks once; the rest wait their turn. Throws E_INVALID_ARGUMENT
   * (UsageError), adding none, when `requests` is not an array of objects.
   */
  submitMany(requests: readonly RequestSpec<T>[]): Promise<Completion<T>>[] {
    const { readable, writable, tokens } = readRequests<T>(requests, this.vq.index, 'submitMany');
    const done = new Array<Promise<Completion<T>>>(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      done[i] = new Promise<Completion<T>>((resolve, reject) => this.enqueue(readable[i]!, writable[i]!, tokens[i]!, promiseCallback(resolve, reject)));
    }
    this.kick();
    return done;
  }

  /**
   * submit() without a promise: adds one chain and kicks; `callback` is called exactly once, with
   * (null, bytes the device wrote, token) when the chain comes back, or with the error submit()
   * would reject with (refusals too, never from inside this call: a microtask later). Waits for
   * room like submit(). Pass the same callback to many requests and tell them apart by `token`.
   *
   * With `kickNow` false the chain is still made available at once (a polling device may take
   * it), but the notification is sent from a microtask, once for every chain added in the same
   * synchronous run of code (virtio 1.2 §2.7.13.4 / §2.8.21.3: one notification may cover many
   * chains) — what a driver wants when completions resubmit from their callbacks. A notification
   * that cannot be sent then goes to onFault or, without it, breaks the queue (E_QUEUE_BROKEN).
   *
   * Throws E_INVALID_ARGUMENT (UsageError), adding nothing, when `callback` is not a function; a
   * chain that is not one (segments not arrays of { addr, len }, or a segment outside the device's
   * DMA memory) is refused with E_BAD_CHAIN through the callback.
   */
  submitCb(readable: readonly Segment[], writable: readonly Segment[], token: T, callback: CompletionCallback<T>, kickNow = true): void {
    checkCallback(callback, this.vq.index, 'submitCb');
    this.enqueue(readable, writable, token, callback);
    if (kickNow) this.kick();
    else this.kickSoon();
  }

  /**
   * submitMany() without promises: every request settles through `callback` (see submitCb), one
   * kick. Throws E_INVALID_ARGUMENT (UsageError), adding none, when `callback` is not a function or
   * `requests` not an array of objects.
   */
  submitManyCb(requests: readonly RequestSpec<T>[], callback: CompletionCallback<T>): void {
    checkCallback(callback, this.vq.index, 'submitManyCb');
    const { readable, writable, tokens } = readRequests<T>(requests, this.vq.index, 'submitManyCb');
    for (let i = 0; i < tokens.length; i++) this.enqueue(readable[i]!, writable[i]!, tokens[i]!, callback);
    this.kick();
  }

  /** Where a request's callback reports what it threw (see onCallbackError); called by the requests, not by users. */
  callbackThrew(error: unknown, token: T): void {
    if (this.onCallbackError) {
      try {
        this.onCallbackError(error, token);
        return;
      } catch (again) {
        error = again;
      }
    }
    process.emitWarning(new RequestError('E_CALLBACK_THREW', `queue ${this.vq.index}: a completion callback threw: ${thrownMessage(error)}`,
      'fix the callback, or set RequestQueue.onCallbackError; the queue went on', { cause: error }));
  }

  /**
   * Settles the requests the device returned, at most `max` (default: all there are; a polling
   * turn passes its budget, busy-poll.ts), and admits waiting ones. Returns how many were
   * returned. Works while halted too: what a failing device finished before its reset is done.
   */
  processUsed(max = Infinity): number {
    if (this.failure) return 0;
    let returned = 0;
    try {
      while (returned < max) {
        const used = this.vq.popUsed();
        if (!used) break;
        used.token.settle(null, used.len);
        returned++;
      }
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      this.completions += returned;
      if (!this.onFault) this.fail(e);
      else if (!this.halted) {
        // Someone resets the device first (QueueSet): the requests are settled after that.
        this.halt(e);
        this.onFault(e);
      }
      return returned;
    }
    this.completions += returned;
    if (!this.halted) this.admitWaiting();
    return returned;
  }

  /**
   * The queue's used-buffer interrupt came (QueueSet's handler calls this): takes at most the
   * budget set with setHybridPoll (OpenOptions.pollBudget) now and the rest on following turns of
   * the event loop, so resubmissions reach the device while the rest wait. processUsed() takes all.
   */
  interrupted(): void {
    this.hybrid.interrupted();
  }

  /** Holds new requests back (they wait in order) until resume(); what is in flight goes on. */
  pause(): void {
    this.paused = true;
  }

  /**
   * Lets waiting requests in again. In a QueueSet, throws E_BAD_STATE (UsageError) while its device
   * is stopping or stopped (see onResume): QueueSet.resume() or reinit() end a stop, not this.
   */
  resume(): void {
    this.onResume?.();
    this.paused = false;
    this.admitWaiting();
    this.poll.schedule();
  }

  /**
   * Puts chains a reset ring forgot (tokens returned by Virtqueue.reset()) back at the head of the
   * line, in the order they were first submitted; they are added as room allows, before anything
   * submitted later, and keep their promises.
   */
  repost(forgotten: readonly RequestToken<T>[]): void {
    if (forgotten.length === 0) return;
    const again = [...forgotten].sort((a, b) => a.seq - b.seq);
    this.waiting = [...again, ...this.waiting.slice(this.waitingHead)];
    this.waitingHead = 0;
    if (!this.paused) this.admitWaiting();
    this.poll.schedule();
  }

  /** Resolves when nothing is in flight or waiting; rejects if the queue breaks or the device fails first. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.halted) return Promise.reject(this.halted);
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
  }

  /**
   * Breaks the queue: rejects everything pending and waiting with `error`, and every later submit
   * (until revive(), after the device was reset).
   */
  fail(error: VirtqueueError): void {
    if (this.failure) return;
    this.failure = error;
    this.stopPolling();
    for (const request of this.vq.fail(error)) request.reject(error);
    this.rejectWaiting(error);
  }

  /**
   * The device failed: refuses new submits with `error` (the first one given, unless `replace`)
   * and stops polling. What is in flight stays in the ring until the device is reset; then
   * settle() rejects it.
   */
  halt(error: UvirtioError, replace = false): void {
    if (replace || !this.halted) this.halted = error;
    this.stopPolling();
    for (const d of this.takeDrainers()) d.reject(error);
  }

  /**
   * After the device was reset: rejects `forgotten` (tokens Virtqueue.reset() returned) and, unless
   * `keepWaiting`, every request still waiting for room, with `error`.
   */
  settle(forgotten: readonly RequestToken<T>[], error: UvirtioError, keepWaiting = false): void {
    for (const request of forgotten) request.reject(error);
    if (!keepWaiting) this.rejectWaiting(error);
    for (const d of this.takeDrainers()) d.reject(error);
  }

  /** The device is working again (recovered or re-initialised): submits are accepted again. */
  revive(): void {
    this.failure = null;
    this.halted = null;
  }

  /** The free() guard's view of the waiting requests: what of [iova, iova+size) one uses, or undefined. */
  private waitingUses(iova: bigint, size: number): string | undefined {
    if (this.waitingCount === 0) return undefined;
    const where = `waiting to be added to queue ${this.vq.index} (${this.paused ? 'held back while the device is stopped' : 'for room on the ring'})`;
    return requestsUse(this.waiting, this.waitingHead, iova, iova + BigInt(size), this.vq.size, where);
  }

  private rejectWaiting(error: UvirtioError): void {
    for (; this.waitingCount > 0; this.dequeueWaiting()) this.waiting[this.waitingHead]!.reject(error);
    for (const d of this.takeDrainers()) d.reject(error);
  }

  /**
   * Calls processUsed on every turn of the event loop (setImmediate) while requests are pending;
   * a turn that finds nothing first spins on the used index for up to `spinUs` µs
   * (OpenOptions.pollSpinUs; 0: no spin), and a turn takes at most `budget` used elements
   * (OpenOptions.pollBudget; default 0: all there are). Throws E_INVALID_ARGUMENT (UsageError)
   * for a budget that is not 'half' or an integer from 0 to 65 536.
   */
  startPolling(spinUs = 0, budget: PollBudget = 0): void {
    this.poll.start(spinUs, budget);
  }

  /**
   * Poll-then-sleep (OpenOptions.hybridPollUs) for a queue with interrupts: after each kick the
   * used ring is polled on every turn of the event loop, with used-buffer notifications suppressed
   * (§2.7.7 / §2.8.10), until `windowUs` µs pass with nothing completed (each completion opens the
   * window again); then notifications are enabled and the ring checked once more, so a completion
   * that raced the enable is not left waiting (§2.7.10). 0 turns it off (interrupts only). A turn
   * that finds nothing first spins up to `spinUs` µs, and takes at most `budget`, as startPolling()
   * (which also says what it throws); so does an interrupt (interrupted()).
   */
  setHybridPoll(windowUs: number, spinUs = 0, budget: PollBudget = 0): void {
    this.hybrid.set(windowUs, spinUs, budget);
  }

  /** Stops the polling startPolling() began; completions are then noticed only via processUsed(). */
  stopPolling(): void {
    this.poll.stop();
  }

  private enqueue(readable: readonly Segment[], writable: readonly Segment[], token: T, callback: CompletionCallback<T>): void {
    const request = new Request(token, readable, writable, this.nextSeq++, callback, this);
    const refused = this.failure ?? this.halted;
    if (refused) {
      settleLater(request, refused);
      return;
    }
    if (this.onBusy && this.vq.inFlight === 0 && this.waitingCount === 0) this.onBusy();
    // Behind others already waiting, a request waits too: first come, first served.
    if (this.paused || this.waitingCount > 0 || !this.place(request)) this.waiting.push(request);
    this.poll.schedule();
  }

  /** Adds the chain; false when the ring has no room now. Any other error settles the request with it. */
  private place(request: RequestToken<T>): boolean {
    try {
      this.vq.add(request.readable, request.writable, request);
      this.addedSinceKick = true;
    } catch (e) {
      if (isInstance(e, VirtqueueError) && e.code === 'E_QUEUE_FULL') return false;
      settleLater(request, isInstance(e, Error) ? e : new VirtqueueError('E_BAD_CHAIN', this.vq.index, `the chain could not be added: ${thrownMessage(e)}`,
        'pass segments as arrays of { addr: bigint, len: number } inside memory of device.dma'));
    }
    return true;
  }

  private admitWaiting(): void {
    if (!this.paused) {
      for (let w = this.waiting[this.waitingHead]; this.waitingCount > 0 && this.place(w!); w = this.waiting[this.waitingHead]) {
        this.dequeueWaiting();
      }
    }
    this.kick();
    if (this.drainers.length > 0 && this.pending === 0) for (const d of this.takeDrainers()) d.resolve();
  }

  /** One kick from a microtask for everything added until then (submitCb with kickNow false). */
  private kickSoon(): void {
    if (this.kickScheduled) return;
    this.kickScheduled = true;
    queueMicrotask(this.deferredKick);
  }

  private readonly deferredKick = (): void => {
    this.kickScheduled = false;
    this.kick();
  };

  private kick(): void {
    if (!this.addedSinceKick) return;
    this.addedSinceKick = false;
    // Suppress before notifying: the device may finish before the notify returns, and would then
    // interrupt for a completion the poll takes anyway.
    if (this.hybrid.on && !this.poll.on) this.hybrid.open();
    try {
      this.vq.kick();
    } catch (e) {
      this.kickFailed(e);
    }
  }

  /**
   * The notification could not be sent (a transport that lost its device or was closed under
   * the driver). The chains are in the ring already and the device may still carry them out, so
   * they are not rejected here: with onFault (QueueSet) the queue halts and the device is failed —
   * reset first, then every request settled with the error. Without it there is nobody to reset
   * the device: the queue breaks (E_QUEUE_BROKEN, every request rejected) a microtask later —
   * never thrown, since a kick also comes from processUsed (a poll timer, an interrupt handler)
   * with no caller to catch it, and a submit() that threw would lose its promise.
   */
  private kickFailed(e: unknown): void {
    const reason = thrownMessage(e);
    if (!this.onFault) {
      const broken = new VirtqueueError('E_QUEUE_BROKEN', this.vq.index, `the notification could not be sent: ${reason}`,
        'the transport lost the device; reset it and the queue');
      queueMicrotask(() => this.fail(broken));
      return;
    }
    const error = e instanceof UvirtioError ? e : new DeviceError('E_SYSCALL', `queue ${this.vq.index}: the notification could not be sent: ${reason}`,
      'the transport lost the device: the device is reset and its requests rejected; recover() once it is reachable again', { cause: e });
    if (this.halted) return;
    this.halt(error);
    this.onFault(error);
  }

  private get waitingCount(): number {
    return this.waiting.length - this.waitingHead;
  }

  private dequeueWaiting(): void {
    this.waitingHead++;
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    } else if (this.waitingHead >= 1024 && this.waitingHead * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.waitingHead); // keep the FIFO's memory bounded
      this.waitingHead = 0;
    }
  }

  private takeDrainers(): { resolve: () => void; reject: (e: Error) => void }[] {
    const drainers = this.drainers;
    this.drainers = [];
    return drainers;
  }
}

/** Settles a request refused at once a microtask later: never from inside the submit call. */
function settleLater<T>(request: RequestToken<T>, error: Error): void {
  queueMicrotask(() => request.settle(error, 0));
}

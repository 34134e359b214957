// One request of a RequestQueue (request-queue.ts) and how it settles: the one completion path.
//
// Every request, whether submitted with a callback (submitCb) or as a promise (submit), is a
// Request carrying a callback; the promise API is that callback resolving or rejecting a promise.
// A Request settles exactly once: the device returned its chain (error null, the used length), or
// it was refused or rejected (a broken queue, a failed or closed device). A later settle is ignored.

import { UsageError } from '../errors.js';
import { isInstance, safeIsArray, shown, thrownMessage } from '../util/shown.js';
import type { Segment } from './queue/types.js';

/** How a request submitted to a {@link RequestQueue} settled: the used length and the caller's token. */
export interface Completion<T> {
  /** Bytes the device wrote into the writable segments. */
  len: number;
  /** The token passed to submit() (undefined when none was given). */
  token: T;
}

/**
 * Called exactly once when a request submitted with {@link RequestQueue.submitCb} settles:
 * `error` null and `len` the bytes the device wrote into the writable segments (virtio 1.2 §2.7.8,
 * §2.8.7: already checked against the chain's writable bytes), or `error` the typed error the
 * request was refused or rejected with (`len` 0): the queue's {@link VirtqueueError} (E_QUEUE_BROKEN,
 * a device fault's E_DEVICE_* code, E_BAD_CHAIN, E_CLOSED) or, while the device is failed or closed,
 * the device's error. `token` is the one given to submitCb. It is never called from inside
 * submitCb itself. What it throws is caught (the queue goes on; see
 * {@link RequestQueue.onCallbackError}).
 */
export type CompletionCallback<T> = (error: Error | null, len: number, token: T) => void;

/** What the virtqueue under a RequestQueue carries as its token for each chain. */
export interface RequestToken<T> {
  /** The caller's token, handed back in the {@link Completion}. */
  readonly token: T;
  /** Settles the request as returned by the device with `c.len` bytes written (the same as settle(null, c.len)). */
  readonly resolve: (c: Completion<T>) => void;
  /** Rejects the request (broken queue, failed or closed device; the same as settle(e, 0)). */
  readonly reject: (e: Error) => void;
  /** Settles the request, once: error null and the used length, or the error. Later calls do nothing. */
  readonly settle: (error: Error | null, len: number) => void;
  /** The chain's device-readable segments, kept so that a ring restarted at index 0 can be given it again (repost). */
  readonly readable: readonly Segment[];
  /** The chain's device-writable segments, kept for repost like `readable`. */
  readonly writable: readonly Segment[];
  /** Submission order. */
  readonly seq: number;
}

/** One request for {@link RequestQueue.submitMany}: the same arguments submit() takes. */
export interface RequestSpec<T> {
  /** Device-readable segments (the request the device reads), in order. */
  readable: readonly Segment[];
  /** Device-writable segments (where the device puts its answer), in order after the readable ones. */
  writable: readonly Segment[];
  /** Returned in the {@link Completion}; optional. */
  token?: T;
}

/** Where a request's callback reports what it threw (the RequestQueue). */
export interface CallbackErrorSink<T> {
  /** `error` is what the callback of the request with `token` threw. */
  callbackThrew(error: unknown, token: T): void;
}

/** A request in a RequestQueue: its chain, its token and the callback it settles through. */
export class Request<T> implements RequestToken<T> {
  private settled = false;

  /**
   * @param token the caller's token.
   * @param readable the chain's device-readable segments.
   * @param writable the chain's device-writable segments.
   * @param seq submission order.
   * @param callback called once when the request settles.
   * @param sink where an exception of `callback` goes.
   */
  constructor(
    readonly token: T,
    readonly readable: readonly Segment[],
    readonly writable: readonly Segment[],
    readonly seq: number,
    private readonly callback: CompletionCallback<T>,
    private readonly sink: CallbackErrorSink<T>,
  ) {}

  /** Settles the request as returned with `c.len` bytes written. */
  resolve(c: Completion<T>): void {
    this.settle(null, c.len);
  }

  /** Settles the request with `e`. */
  reject(e: Error): void {
    this.settle(e, 0);
  }

  /** Calls the callback, the first time only; what it throws goes to the sink, not to the caller. */
  settle(error: Error | null, len: number): void {
    if (this.settled) return;
    this.settled = true;
    try {
      this.callback(error, len, this.token);
    } catch (e) {
      this.sink.callbackThrew(e, this.token);
    }
  }
}

/**
 * A callback settling a promise: the promise API of {@link RequestQueue} on its one completion
 * path. `resolve` gets the {@link Completion}, `reject` the error.
 */
export function promiseCallback<T>(resolve: (c: Completion<T>) => void, reject: (e: Error) => void): CompletionCallback<T> {
  return (error, len, token) => {
    if (error) reject(error);
    else resolve({ len, token });
  };
}

/**
 * Throws a {@link UsageError} E_INVALID_ARGUMENT unless `callback` is a function: a submitCb or
 * submitManyCb that could never call back is refused at the call, before anything is added.
 * `queue` and `where` (the method) name the call in the message; nothing is built on success.
 */
export function checkCallback(callback: unknown, queue: number, where: string): void {
  if (typeof callback !== 'function') {
    throw new UsageError('E_INVALID_ARGUMENT', `queue ${queue}: ${where}: the completion callback must be a function (error, len, token) => void, got ${shown(callback)}`,
      'pass a function; it is called once per request when the request settles');
  }
}

/**
 * The batch `requests` as plain values, each entry and each field read exactly once: the readable
 * and writable segment lists and the token of every request, in order. Throws a
 * {@link UsageError} E_INVALID_ARGUMENT unless `requests` is an array of objects, or when reading
 * it throws (a getter, a Proxy): all of it is read before any request is added, so a bad batch
 * adds none (no chain made available and never notified), and what was checked is what is
 * submitted. The segments themselves are the virtqueue's to check (E_BAD_CHAIN, per request).
 */
export function readRequests<T>(requests: unknown, queue: number, where: string): { readable: (readonly Segment[])[]; writable: (readonly Segment[])[]; tokens: T[] } {
  if (!safeIsArray(requests)) {
    throw new UsageError('E_INVALID_ARGUMENT', `queue ${queue}: ${where}: the requests must be an array of { readable, writable, token }, got ${shown(requests)}`);
  }
  let i = -1;
  try {
    const n = requests.length;
    const readable = new Array<readonly Segment[]>(n);
    const writable = new Array<readonly Segment[]>(n);
    const tokens = new Array<T>(n);
    for (i = 0; i < n; i++) {
      const r: unknown = requests[i];
      if (typeof r !== 'object' || r === null) {
        throw new UsageError('E_INVALID_ARGUMENT', `queue ${queue}: ${where}: requests[${i}] must be an object { readable, writable, token }, got ${shown(r)}`,
          'nothing of this batch was submitted; fix the entry and submit the batch again');
      }
      const spec = r as { readable: readonly Segment[]; writable: readonly Segment[]; token: T };
      readable[i] = spec.readable;
      writable[i] = spec.writable;
      tokens[i] = spec.token;
    }
    return { readable, writable, tokens };
  } catch (e) {
    if (isInstance(e, UsageError)) throw e;
    throw new UsageError('E_INVALID_ARGUMENT', `queue ${queue}: ${where}: ${i < 0 ? 'the requests' : `requests[${i}]`} could not be read: ${thrownMessage(e)}`,
      'nothing of this batch was submitted; pass plain objects');
  }
}


/**
 * The first segment of `requests` (from index `from` on) that overlaps the bytes [iova, end), as
 * `request <seq> <where> uses 0x…+len of it`, or undefined: the free() guard's view of requests
 * not on a ring (waiting for room, held back by a stop, kept for a repost). Their segment arrays
 * are the caller's and unchecked until the chain is added, so they are read defensively: never
 * throws (a getter or Proxy that throws, or a value that is no segment, is passed over), and reads
 * at most `maxSegments` segments per array (a longer chain is refused E_BAD_CHAIN when added).
 */
export function requestsUse<T>(requests: readonly RequestToken<T>[], from: number, iova: bigint, end: bigint, maxSegments: number, where: string): string | undefined {
  for (let i = from; i < requests.length; i++) {
    const request = requests[i]!;
    const hit = segmentsOverlap(request.readable, iova, end, maxSegments) ?? segmentsOverlap(request.writable, iova, end, maxSegments);
    if (hit !== undefined) return `request ${request.seq} ${where} uses ${hit} of it`;
  }
  return undefined;
}

/** requestsUse's reading of one segment array: `0x…+len` of the first segment overlapping [iova, end), or undefined. */
function segmentsOverlap(segments: readonly Segment[], iova: bigint, end: bigint, maxSegments: number): string | undefined {
  try {
    if (!safeIsArray(segments)) return undefined;
    const n: unknown = segments.length;
    if (typeof n !== 'number' || !(n > 0)) return undefined;
    const count = Math.min(n, maxSegments);
    for (let k = 0; k < count; k++) {
      const segment: unknown = segments[k];
      if (typeof segment !== 'object' || segment === null) continue;
      const { addr, len } = segment as { addr: unknown; len: unknown };
      if (typeof addr !== 'bigint' || typeof len !== 'number' || !Number.isInteger(len) || len < 1) continue;
      if (addr < end && iova < addr + BigInt(len)) return `0x${addr.toString(16)}+${len}`;
    }
  } catch {
    // A segment that cannot be read can never be added either (E_BAD_CHAIN): it uses nothing.
  }
  return undefined;
}

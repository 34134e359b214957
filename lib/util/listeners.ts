// Listeners a user subscribes (onFrame, onPort, onFailure, onConfigChange, onLost …). The SDK calls
// them from inside its own work — an interrupt, a polling turn, a device failure being handled — so a
// listener that throws must not unwind that work: it would strand requests, lose a receive buffer or,
// from an event callback, end the process. Each listener is called in turn; what one throws becomes
// a process warning (E_CALLBACK_THREW, the exception as its cause) and the others are still called.

import type { EventEmitter } from 'node:events';
import { UsageError, UvirtioError } from '../errors.js';
import { shown, thrownMessage } from './shown.js';

/** A set of listeners of one event, each called with the event's arguments `A`. */
export class Listeners<A extends unknown[]> {
  private readonly set = new Set<(...args: A) => void>();

  /** @param event names the event in warnings and errors (e.g. "frame", "device failure"). */
  constructor(private readonly event: string) {}

  /**
   * Subscribes `listener`; returns a function that unsubscribes it (idempotent). Throws
   * E_INVALID_ARGUMENT (UsageError) when `listener` is not a function. A listener added twice is
   * called once.
   */
  add(listener: (...args: A) => void): () => void {
    if (typeof listener !== 'function') {
      throw new UsageError('E_INVALID_ARGUMENT', `a ${this.event} listener must be a function, not ${shown(listener)}`, 'pass a function');
    }
    this.set.add(listener);
    return () => { this.set.delete(listener); };
  }

  /**
   * Calls every listener subscribed now, in the order they subscribed, with `args`; one that
   * subscribes or unsubscribes others during the call changes the next emit, not this one. Never
   * throws: what a listener throws is reported as a process warning (E_CALLBACK_THREW).
   */
  emit(...args: A): void {
    callEach([...this.set], undefined, args, `a ${this.event} listener`);
  }

  /** Unsubscribes every listener. */
  clear(): void {
    this.set.clear();
  }
}

/**
 * Reports what a user's callback threw as a process warning E_CALLBACK_THREW: "`what` threw: …"
 * (e.g. "a frame listener threw: …"), the exception as its cause. Never throws.
 */
export function callbackThrew(what: string, thrown: unknown, hint = 'fix the listener; the other listeners were called and the SDK went on'): void {
  try {
    process.emitWarning(new UvirtioError('E_CALLBACK_THREW', `${what} threw: ${thrownMessage(thrown)}`, hint, { cause: thrown }));
  } catch {
    // emitWarning itself failed: nothing more can be reported (its 'warning' listeners run later, not here)
  }
}

/**
 * `emitter.emit(event, ...args)` as Listeners does it, for an EventEmitter whose listeners are user
 * code (a console port's stream events): each listener subscribed now is called in turn, as emit()
 * would call it (a once() listener is removed first), and what one throws is reported through
 * callbackThrew (`a ${name} listener`); the others are still called. Returns whether there was a
 * listener. Never throws.
 */
export function emitEach(emitter: EventEmitter, name: string, event: string | symbol, args: readonly unknown[]): boolean {
  const listeners = emitter.rawListeners(event) as ((...a: unknown[]) => unknown)[];
  callEach(listeners, emitter, args, `a ${name} listener`);
  return listeners.length > 0;
}

/** Calls each of `fns` with `self` and `args`; what one throws is reported as `who` threw (callbackThrew). */
function callEach(fns: readonly ((...a: never[]) => unknown)[], self: unknown, args: readonly unknown[], who: string): void {
  for (const f of fns) {
    try {
      Reflect.apply(f, self, args);
    } catch (e) {
      callbackThrew(who, e);
    }
  }
}

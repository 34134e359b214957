// Who drives a transport: one VirtioDevice at a time. A second open (VirtioDevice.open, a driver's
// open, a reinit onto it as a target) while another VirtioDevice drives the transport would reset
// the device under the first driver — its requests stranded, then blamed on the device — so it is
// refused, synchronously at the start (two opens at once cannot both pass). The claim ends when
// its VirtioDevice is closed or reset(), or leaves the transport for a reinit target.
//
// Also what counts as a transport where a public call takes one (checkTransportArgument).

import { UsageError } from '../errors.js';
import type { VirtioTransport } from '../transport/types.js';
import { shown } from '../util/shown.js';

/** The owner of each claimed transport (keyed by the object passed in: openTransport(address).transport). */
const owners = new WeakMap<object, TransportOwner>();

/** The transports one VirtioDevice drives or is taking over (internal: a DeviceCore holds one). */
export class TransportOwner {
  private readonly held = new Set<VirtioTransport>();

  /**
   * Makes this owner the transport's, or throws UsageError E_DEVICE_IN_USE when another owner
   * (another open VirtioDevice) has it; claiming one it already holds does nothing. Synchronous.
   * `doing` names the operation for the message ("opening a device", "a reinit onto it").
   */
  claim(t: VirtioTransport, doing: string): void {
    const other = owners.get(t);
    if (other !== undefined && other !== this) {
      throw new UsageError('E_DEVICE_IN_USE',
        `${t.address}: ${doing} refused: another VirtioDevice (a driver opened on this transport) drives it, and its device would be reset under it`,
        'a transport has one driver at a time: close the first driver (or VirtioDevice) before opening another on the device — its close() closes the transport too, so open the address again with openTransport(address) — or open another address');
    }
    owners.set(t, this);
    this.held.add(t);
  }

  /** Lets go of `t` (no effect when this owner does not hold it). */
  release(t: VirtioTransport): void {
    if (owners.get(t) === this) owners.delete(t);
    this.held.delete(t);
  }

  /** Lets go of every transport this owner holds. */
  releaseAll(): void {
    for (const t of [...this.held]) this.release(t);
  }

  /** Whether another owner (another VirtioDevice) has `t` now. */
  otherHolds(t: VirtioTransport): boolean {
    const o = owners.get(t);
    return o !== undefined && o !== this;
  }
}

/** The methods every VirtioTransport has, looked for to tell a transport from a careless argument. */
const TRANSPORT_METHODS = ['readStatus', 'writeStatus', 'reset', 'deviceFeatures', 'writeDriverFeatures', 'queueMaxSize', 'configureQueue'] as const;

/** Whether `o[name]` is a function; false when looking throws (a getter or a Proxy trap that throws). */
function isMethod(o: object, name: string): boolean {
  try {
    return typeof (o as Record<string, unknown>)[name] === 'function';
  } catch {
    return false;
  }
}

/**
 * Throws UsageError E_INVALID_ARGUMENT unless `value` looks like a {@link VirtioTransport} (an
 * object with its methods): what a careless caller passes instead — the address string, null or
 * undefined (an open that failed), a number, {} — is refused by kind, with a hint, before anything
 * reads it. `where` names the call ("VirtioDevice.open", "BlkDriver.open", "reinit target").
 */
export function checkTransportArgument(value: unknown, where: string): asserts value is VirtioTransport {
  const missing = typeof value === 'object' && value !== null ? TRANSPORT_METHODS.filter((m) => !isMethod(value, m)) : TRANSPORT_METHODS;
  if (missing.length === 0) return;
  const what = typeof value === 'string'
    ? `the string ${shown(value)} (an address, not a transport)`
    : typeof value === 'object' && value !== null ? `an object without a transport's methods (${missing.join(', ')})` : shown(value);
  throw new UsageError('E_INVALID_ARGUMENT', `${where} needs a virtio transport, got ${what}`,
    'open a transport with openTransport(address) first and pass its .transport (const { transport } = await openTransport(\'sim:blk\'))');
}

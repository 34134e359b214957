// The reference device's catalogue of misbehaviour: what `injectFault({ kind, queue?, count?,
// reason?, command? })` makes the device do, until `clearFaults()` puts it back to normal. Each
// kind is deterministic; a driver is expected to notice each with its own error, never crash and
// never hang (issue 10: "every request settles and every wait ends").
//
//   kind                 class      effect
//   -------------------  ---------  ------------------------------------------------------------
//   bad-used-id          one-shot   the used element names id = queue size (no head / buffer id
//                                   can be that) (§2.7.8, §2.8.22)
//   used-len-overflow    one-shot   len = the chain's writable bytes + 1 (§2.7.8.1: len is what
//                                   was written, so never more than the writable part)
//   used-index-jump      one-shot   split only: used->idx advances by 2 for one element
//   bad-packed-flags     one-shot   packed only: the used descriptor has USED = the wrap counter
//                                   (it looks used) but AVAIL != USED (§2.8.1)
//   used-len-short       one-shot   fewer bytes than the request needs: a blk request answers
//                                   status OK with len = 1 (only the status byte; an IN's or
//                                   GET_ID's data buffer is left untouched), len 0 when there is
//                                   no data to read; a net receive buffer gets len 6, below the
//                                   12-byte header. Other queues (net tx, control, rng — whose
//                                   len may legitimately be short) never take it.
//   bad-blk-status       one-shot   blk only: the request is carried out, but its status byte is
//                                   BAD_BLK_STATUS (0x7e), none of OK / IOERR / UNSUPP (§5.2.6)
//   needs-reset          immediate  DEVICE_NEEDS_RESET now, `failure` set, and the configuration
//                                   interrupt when DRIVER_OK is set (§2.1.2) — not once STOP
//                                   shows: a stopped device sends nothing (docs/provisional-registers.md)
//   interrupt-storm      immediate  `count` (default 1) spurious interrupts on every MSI-X vector;
//                                   without MSI-X the ISR queue and config bits are set
//   reset-stuck          sticky     a write of 0 to device_status never completes: the device
//                                   goes quiet (no ring access, no interrupt) but device_status
//                                   keeps reading its old value and status writes are ignored;
//                                   clearFaults() completes the reset (reads 0)
//   stop-stuck           sticky     STOP and SUSPEND are acted on (no more fetching, drain or
//                                   hold) but never shown; clearFaults() shows them
//   config-churn         sticky     config_generation changes on every read (§2.5.1's retry loop
//                                   never settles)
//   interrupt-silence    sticky     requests complete and used elements are written, but no
//                                   used-buffer interrupt is sent (of `queue`, or any queue)
//   completion-silence   sticky     requests are fetched and never completed (of `queue`, or
//                                   any): a hung device — STOP in drain mode and SUSPEND never
//                                   finish draining; receive buffers are never filled.
//                                   clearFaults() completes what it held (per the completion mode)
//   state-lie            sticky     queue_avail_state reads `count` (default 1) ahead of the truth
//                                   and queue_used_state `count` behind it (of `queue`, or any):
//                                   a state claiming 2×count requests the driver never made
//                                   available. Split: mod 2^16; packed: the 15-bit index shifted
//                                   without wrapping the counter, so an index ≥ the queue size
//                                   (an impossible state) can appear
//   device-state-refuse  sticky     DEVICE_STATE commands (`command`: 'save' or 'load', default
//                                   both) are refused: CMD reads `reason` (default 0xffff, no
//                                   reason; lib/spec DeviceStateRefusal for the others)
//   features-refuse      sticky     FEATURES_OK never sticks, whatever features are written (a
//                                   target refusing features)
//   features-accept-any  sticky     FEATURES_OK sticks even when the driver accepted bits that were
//                                   not offered (§2.2.2: the device must refuse them); the bits
//                                   offered are what is negotiated
//   reserved-feature     sticky     device_feature also shows bit RESERVED_FEATURE_BIT (47), which
//                                   virtio 1.2 §6 reserves and no later version defines; the device
//                                   implements nothing for it (accepting it is "not offered")
//   queue-enable-lost    sticky     queue_enable reads 0 even for an enabled queue (§4.1.4.3.1 requires only the 0 on reset: doubtful, not a MUST);
//                                   the queue works all the same
//   msix-vector-lost     sticky     config_msix_vector and queue_msix_vector read 0 whatever was
//                                   written (§4.1.5.1.2: they must read back the vector, or
//                                   NO_VECTOR); the vectors written are the ones used
//   interrupt-after-stop sticky     when STOP shows, a used-buffer interrupt on every enabled
//                                   queue's vector (proposal: a stopped device sends nothing)
//
// One-shot kinds apply to the next `count` (default 1) used elements they fit — of `queue` when
// given; a kind that does not fit a queue (a split-only fault on a packed ring, a blk fault on net)
// waits for one that it fits.
//
// What a driver on the SDK's contract (lib/errors.ts) is expected to report for each:
// bad-used-id E_DEVICE_BAD_USED_ID, used-len-overflow E_DEVICE_BAD_USED_LEN, used-index-jump
// E_DEVICE_USED_INDEX_JUMP, bad-packed-flags E_DEVICE_BAD_PACKED_FLAGS, used-len-short
// E_DEVICE_SHORT_USED_LEN, bad-blk-status E_DEVICE_BAD_REPLY, needs-reset E_DEVICE_NEEDS_RESET,
// interrupt-storm nothing (spurious interrupts are allowed, §2.7.7.1), reset-stuck E_RESET_TIMEOUT,
// stop-stuck E_STOP_TIMEOUT / E_SUSPEND_TIMEOUT, config-churn E_CONFIG_UNSTABLE, interrupt-silence
// nothing lost (requests still complete, found by polling) or E_DEVICE_UNRESPONSIVE,
// completion-silence E_DEVICE_UNRESPONSIVE (or the stop timeout), state-lie E_DEVICE_BAD_STATE,
// device-state-refuse E_STATE_REFUSED with the reason, features-refuse E_FEATURES_NOT_OK;
// features-accept-any, reserved-feature, queue-enable-lost and interrupt-after-stop nothing (a
// conforming driver does not depend on them; `uvirtio check` reports each against its clause),
// msix-vector-lost nothing or misrouted interrupts (found by polling).

import { DeviceStateCmd } from '../../spec/index.js';
import { UsageError } from '../../errors.js';
import { shown } from '../../util/shown.js';
import { optionsObject, type OptionKeys } from '../../util/options.js';
import type { UsedFault } from './ring/chain.js';

/**
 * One-shot faults a device model applies while answering a request (model.ts): used-len-short
 * (a used len shorter than the request needs) and bad-blk-status (a blk status byte of
 * BAD_BLK_STATUS, virtio 1.2 §5.2.6).
 */
export type ReplyFault = 'used-len-short' | 'bad-blk-status';
/**
 * Faults carried out the moment they are injected: needs-reset (DEVICE_NEEDS_RESET with `failure`,
 * virtio 1.2 §2.1.2) and interrupt-storm (`count` spurious interrupts on every vector).
 */
export type ImmediateFault = 'needs-reset' | 'interrupt-storm';
/**
 * Faults in force until clearFaults(): a reset or a STOP / SUSPEND that never shows, an unstable
 * config_generation, missing interrupts or completions, lying queue state, refused DEVICE_STATE
 * commands, a FEATURES_OK that never sticks (or sticks for bits not offered), a reserved feature
 * bit shown, queue_enable or MSI-X vectors that do not read back, interrupts after STOP. The table at the top of lib/sim/virtio/faults.ts
 * gives each one's effect.
 */
export type StickyFault =
  | 'reset-stuck' | 'stop-stuck' | 'config-churn' | 'interrupt-silence' | 'completion-silence' | 'state-lie'
  | 'device-state-refuse' | 'features-refuse' | 'features-accept-any' | 'reserved-feature' | 'queue-enable-lost'
  | 'msix-vector-lost' | 'interrupt-after-stop';
/**
 * Every fault injectFault() takes, by class: one-shot on used elements (UsedFault) or on replies
 * (ReplyFault), immediate (ImmediateFault), sticky (StickyFault). FAULT_KINDS lists them at run time.
 */
export type FaultKind = UsedFault | ReplyFault | ImmediateFault | StickyFault;

/**
 * What injectFault() makes the device do. Fields a kind does not use are ignored; the device
 * throws E_INVALID_ARGUMENT (UsageError) for an unknown kind, a queue it does not have, a count
 * that is not a positive integer, a reason outside 1–0xffff or a command other than 'save' / 'load'.
 */
export interface SimFault {
  /** Which misbehaviour (FAULT_KINDS). */
  kind: FaultKind;
  /** One-shot kinds, interrupt-silence, completion-silence, state-lie: only this queue (default any). */
  queue?: number;
  /** One-shot kinds: this many used elements; interrupt-storm: interrupts per vector; state-lie: the offset. Default 1. */
  count?: number;
  /** device-state-refuse: what DEVICE_STATE_CMD reads (default DeviceStateCmd.REFUSED, 0xffff). */
  reason?: number;
  /** device-state-refuse: only this command (default both). */
  command?: 'save' | 'load';
}

/** The status byte of bad-blk-status: none of OK 0, IOERR 1, UNSUPP 2 (nor the zoned 3–5 of later specs). */
export const BAD_BLK_STATUS = 0x7e;
/** The bit reserved-feature shows in device_feature: in 41–49, which virtio 1.2 §6 reserves, and unassigned since. */
export const RESERVED_FEATURE_BIT = 47;
/** The len used-len-short reports for a net receive buffer: half of the 12-byte header. */
export const SHORT_NET_RX_LEN = 6;

const USED_FAULTS: readonly FaultKind[] = ['bad-used-id', 'used-len-overflow', 'used-index-jump', 'bad-packed-flags'];
const REPLY_FAULTS: readonly FaultKind[] = ['used-len-short', 'bad-blk-status'];
const IMMEDIATE_FAULTS: readonly FaultKind[] = ['needs-reset', 'interrupt-storm'];
const STICKY_FAULTS: readonly FaultKind[] = [
  'reset-stuck', 'stop-stuck', 'config-churn', 'interrupt-silence', 'completion-silence', 'state-lie', 'device-state-refuse', 'features-refuse',
  'features-accept-any', 'reserved-feature', 'queue-enable-lost', 'msix-vector-lost', 'interrupt-after-stop',
];
/** Every FaultKind, one-shot used faults first, then reply, immediate and sticky ones. */
export const FAULT_KINDS: readonly FaultKind[] = [...USED_FAULTS, ...REPLY_FAULTS, ...IMMEDIATE_FAULTS, ...STICKY_FAULTS];

export function isImmediate(kind: FaultKind): kind is ImmediateFault {
  return IMMEDIATE_FAULTS.includes(kind);
}

/** A fault's fields, for the check that refuses a misspelt one (a `queu` would fault every queue). */
const FAULT_KEYS: OptionKeys<SimFault> = { kind: true, queue: true, count: true, reason: true, command: true };

/** Checks a fault's fields (a field it does not have is refused); the device checks `queue` against its queues. */
export function checkFault(given: SimFault, queueCount: number): Required<Pick<SimFault, 'kind' | 'count'>> & SimFault {
  if (typeof given !== 'object' || given === null) {
    throw new UsageError('E_INVALID_ARGUMENT', `a fault must be an object { kind, … }, got ${shown(given)}`, `use one of ${FAULT_KINDS.join(', ')} as its kind`);
  }
  // Read once, into a plain copy: the checks and the device use the same values (a getter or a
  // Proxy cannot pass the check with one queue and fault another).
  const fault = optionsObject(given, 'injectFault()', FAULT_KEYS);
  const bad = (why: string): never => {
    throw new UsageError('E_INVALID_ARGUMENT', `fault ${shown(fault.kind)}: ${why}`);
  };
  if (!FAULT_KINDS.includes(fault.kind)) {
    throw new UsageError('E_INVALID_ARGUMENT', `unknown fault ${shown(fault.kind)}`, `use one of ${FAULT_KINDS.join(', ')}`);
  }
  if (fault.queue !== undefined && (!Number.isInteger(fault.queue) || fault.queue < 0 || fault.queue >= queueCount)) {
    bad(`queue ${shown(fault.queue)} is not one of the device's ${queueCount}`);
  }
  const count = fault.count ?? 1;
  if (!Number.isInteger(count) || count < 1) bad(`count must be a positive integer, got ${shown(count)}`);
  if (fault.reason !== undefined && (!Number.isInteger(fault.reason) || fault.reason < 1 || fault.reason > 0xffff)) {
    bad(`reason must be a 16-bit non-zero code, got ${shown(fault.reason)}`);
  }
  if (fault.command !== undefined && fault.command !== 'save' && fault.command !== 'load') bad(`command must be 'save' or 'load'`);
  return { ...fault, count };
}

interface Pending {
  kind: FaultKind;
  queue: number | undefined;
  left: number;
}

/** The faults injected and not yet spent or cleared. `any` is the device's one check on its hot path. */
export class FaultSet {
  any = false;
  private oneShot: Pending[] = [];
  private sticky: SimFault[] = [];

  /** Keeps a one-shot or sticky fault (immediate ones the device carries out itself). */
  add(fault: SimFault & { count: number }): void {
    if (USED_FAULTS.includes(fault.kind) || REPLY_FAULTS.includes(fault.kind)) {
      this.oneShot.push({ kind: fault.kind, queue: fault.queue, left: fault.count });
    } else {
      this.sticky.push({ ...fault });
    }
    this.any = true;
  }

  clear(): void {
    this.oneShot = [];
    this.sticky = [];
    this.any = false;
  }

  /** The first pending used-element fault for `queue` the ring supports, spent by one. */
  takeUsed(queue: number, supports: (f: UsedFault) => boolean): UsedFault | undefined {
    return this.take(queue, (k) => USED_FAULTS.includes(k) && supports(k as UsedFault)) as UsedFault | undefined;
  }

  /** The first pending reply fault for `queue` the model supports, spent by one. */
  takeReply(queue: number, supports: (f: ReplyFault) => boolean): ReplyFault | undefined {
    return this.take(queue, (k) => REPLY_FAULTS.includes(k) && supports(k as ReplyFault)) as ReplyFault | undefined;
  }

  /** The sticky fault of this kind in force for `queue` (or for the device, queue undefined). */
  active(kind: StickyFault, queue?: number): SimFault | undefined {
    if (!this.any) return undefined;
    return this.sticky.find((f) => f.kind === kind && (f.queue === undefined || queue === undefined || f.queue === queue));
  }

  /** The refusal code device-state-refuse puts in DEVICE_STATE_CMD for this command, if any. */
  refusal(command: 'save' | 'load'): number | undefined {
    const f = this.sticky.find((s) => s.kind === 'device-state-refuse' && (s.command === undefined || s.command === command));
    return f ? (f.reason ?? DeviceStateCmd.REFUSED) : undefined;
  }

  private take(queue: number, fits: (k: FaultKind) => boolean): FaultKind | undefined {
    if (this.oneShot.length === 0) return undefined;
    const at = this.oneShot.findIndex((f) => (f.queue === undefined || f.queue === queue) && fits(f.kind));
    if (at < 0) return undefined;
    const f = this.oneShot[at]!;
    if (--f.left === 0) this.oneShot.splice(at, 1);
    this.any = this.oneShot.length > 0 || this.sticky.length > 0;
    return f.kind;
  }
}

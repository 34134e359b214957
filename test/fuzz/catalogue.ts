// The fault catalogue the fuzzer draws from: each class of device misbehaviour the reference device
// can put on (lib/sim fault kinds), with the stable codes a caller may see because of it. A class
// whose codes are [] must cause no error at all (the SDK absorbs it). Anything else a request or an
// operation fails with is a bug the fuzzer reports.

import type { ErrorCode } from '../../lib/errors.js';
import type { FaultKind as SimFaultKind } from '../../lib/sim/index.js';

export interface FaultClass {
  kind: SimFaultKind;
  /** Codes this fault may surface as (own code first). */
  codes: readonly ErrorCode[];
  /** Applies only to this layout / device type / state support. */
  layout?: 'split' | 'packed';
  type?: 'blk' | 'net';
  needsDeviceState?: boolean;
  /** Put on the migration target rather than the running device. */
  onTarget?: boolean;
}

export const CATALOGUE: readonly FaultClass[] = [
  { kind: 'bad-used-id', codes: ['E_DEVICE_BAD_USED_ID'] },
  { kind: 'used-len-overflow', codes: ['E_DEVICE_BAD_USED_LEN'] },
  // A jump within what is in flight is not visible as such: the driver reads the slot the device
  // skipped, whose stale element names a chain not in flight, or one whose reply was never written
  // (the status byte still holds the driver's 0xff, a receive header the driver's poison, or the
  // length is short). A chain the driver so takes back early and posts again is one the device
  // still holds: the strict device then sets DEVICE_NEEDS_RESET (buffer-in-use).
  // A device that jumped its used index and is stopped before the driver saw the jump reports it in
  // its state too (used state past the avail state): the snapshot refuses that state
  // (E_DEVICE_BAD_STATE). Seen with net, polling, ring-state (seed 20261129, about 1 run in 4 of
  // the first 700: timing decides whether the driver or the stop sees the jump first).
  { kind: 'used-index-jump', codes: ['E_DEVICE_USED_INDEX_JUMP', 'E_DEVICE_BAD_USED_ID', 'E_DEVICE_BAD_REPLY', 'E_DEVICE_SHORT_USED_LEN', 'E_DEVICE_NEEDS_RESET', 'E_DEVICE_BAD_STATE'], layout: 'split' },
  { kind: 'bad-packed-flags', codes: ['E_DEVICE_BAD_PACKED_FLAGS'], layout: 'packed' },
  { kind: 'used-len-short', codes: ['E_DEVICE_SHORT_USED_LEN'] },
  { kind: 'bad-blk-status', codes: ['E_DEVICE_BAD_REPLY'], type: 'blk' },
  { kind: 'needs-reset', codes: ['E_DEVICE_NEEDS_RESET'] },
  // A stuck device also ignores status writes: one caught already reset (reading 0) refuses FEATURES_OK.
  { kind: 'reset-stuck', codes: ['E_RESET_TIMEOUT', 'E_FEATURES_NOT_OK'] },
  { kind: 'stop-stuck', codes: ['E_STOP_TIMEOUT', 'E_SUSPEND_TIMEOUT', 'E_DEVICE_UNRESPONSIVE'] },
  { kind: 'config-churn', codes: ['E_CONFIG_UNSTABLE'] },
  { kind: 'interrupt-storm', codes: [] },
  { kind: 'interrupt-silence', codes: [] },
  { kind: 'completion-silence', codes: ['E_DEVICE_UNRESPONSIVE', 'E_STOP_TIMEOUT', 'E_SUSPEND_TIMEOUT'] },
  { kind: 'state-lie', codes: ['E_DEVICE_BAD_STATE'] },
  { kind: 'device-state-refuse', codes: ['E_STATE_REFUSED'], needsDeviceState: true, onTarget: true },
  { kind: 'features-refuse', codes: ['E_FEATURES_NOT_OK'], onTarget: true },
];

/** Every code a run may see after these faults (plus what closing and bad snapshot files give). */
export function allowedCodes(faults: readonly FaultClass[]): Set<ErrorCode> {
  const codes = new Set<ErrorCode>(['E_CLOSED']);
  for (const f of faults) {
    for (const c of f.codes) codes.add(c);
  }
  return codes;
}

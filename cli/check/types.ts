// The shapes of `uvirtio check` (issue 14): a check is one requirement of the virtio 1.2 spec (or
// of the STOP/state proposal, or of virtio 1.4 SUSPEND) that a driver can observe, tied to its
// section, with what it needs from the device and a bound on its run. The runner (runner.ts)
// decides n/a from `needs`, bounds each run, resets the device between groups and turns a SHOULD
// that fails into a warning.

import type { OpenOptions, VirtioDevice } from '../../lib/virtio/device.js';
import type { VirtioTransport } from '../../lib/transport/types.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import type { VirtioPciTransport } from '../../lib/transport/pci/transport.js';

/** How strongly the spec words the requirement: a MUST that fails fails the suite; a SHOULD only warns. */
export type Level = 'MUST' | 'SHOULD';
/** A check's outcome: pass; fail (a MUST broken); warn (a SHOULD broken); n/a (the device lacks what it needs). */
export type Outcome = 'pass' | 'fail' | 'warn' | 'n/a';

/** What a check's run returns: the outcome and one line saying why (units and counts in it). */
export interface Verdict {
  /** 'fail' of a SHOULD check is reported as 'warn'. */
  result: Outcome;
  /** Why; for n/a the reason (which feature, transport or layout is missing). */
  detail: string;
}

/** What a check needs from the device; a check whose needs are not met is n/a with the reason. */
export interface Needs {
  /** One of these device types (virtio 1.2 §5 ids). */
  types?: readonly number[];
  /** Every one of these feature bits offered. */
  features?: readonly number[];
  /** The virtio-pci transport (virtio 1.2 §4.1): sim: and vfio: addresses. */
  pci?: boolean;
}

/** One check of the suite (the table in ./all.ts; docs/check.md is generated from it). */
export interface Check {
  /** Stable id, `group.what` (e.g. status.reset-reads-zero); CI keys on it. */
  readonly id: string;
  /** The section the requirement is in: "2.4.1" (virtio 1.2), "proposal", "1.4 3.4". */
  readonly section: string;
  /** The requirement, in a sentence of our own words. */
  readonly clause: string;
  /** MUST or SHOULD. */
  readonly level: Level;
  /** What the device must have for the check to apply. */
  readonly needs?: Needs;
  /** What the check does, for docs/check.md. */
  readonly does: string;
  /** Bound on the whole run in ms (default the runner's per-check bound); named in the detail when it trips. */
  readonly timeoutMs?: number;
  /** Runs the check; throws are turned into 'fail' (a UvirtioError's code and message in the detail). */
  run(ctx: CheckContext): Promise<Verdict>;
}

/** What a check's run gets: the device at several levels, and the user's limits. */
export interface CheckContext {
  /**
   * The device's transport (register-level access, virtio 1.2 §4.1 for pci), lent: its close()
   * does nothing, so a VirtioDevice or driver a check closes leaves it open for the next check.
   */
  readonly t: VirtioTransport;
  /** The same transport when it is virtio-pci, for the §4.1 checks; null otherwise. */
  readonly pci: VirtioPciTransport | null;
  /** The device features as offered (read once at the start). */
  readonly offered: bigint;
  /** `--scratch-sector N`: the only blk sector a check may write (null: no writes at all). */
  readonly scratchSector: number | null;
  /** This check's bound in ms. */
  readonly timeoutMs: number;
  /** Opens a VirtioDevice (reset … FEATURES_OK) that the runner closes after the check. */
  open(options?: OpenOptions): Promise<VirtioDevice>;
  /** DMA memory (the transport's) freed after the check, once the device has been reset. */
  alloc(size: number): DmaRegion;
  /** Registers something to close after the check (a driver); closes run last-registered first. */
  defer(close: () => Promise<unknown> | unknown): void;
  /** Called by a check once its device is live (DRIVER_OK): the test seam where a fault is injected. */
  live(): Promise<void>;
  /** Results shared between the checks of one group (a traffic run several checks read), by key. */
  memo<T>(key: string, make: () => Promise<T>): Promise<T>;
}

/** A passing verdict. */
export const pass = (detail = ''): Verdict => ({ result: 'pass', detail });
/** A failing verdict (a warning for a SHOULD check). */
export const fail = (detail: string): Verdict => ({ result: 'fail', detail });
/** A warning whatever the level (the device did something legal but doubtful). */
export const warn = (detail: string): Verdict => ({ result: 'warn', detail });
/** Not applicable, with the reason. */
export const na = (reason: string): Verdict => ({ result: 'n/a', detail: reason });

/** A section as people cite it: "§2.4.1" (virtio 1.2), "1.4 §3.4" (a later version), "proposal". */
export function cite(section: string): string {
  if (/^\d/.test(section) && !/^1\.\d /.test(section)) return `§${section}`;
  const later = /^(1\.\d) (.*)$/.exec(section);
  return later ? `${later[1]} §${later[2]}` : section;
}

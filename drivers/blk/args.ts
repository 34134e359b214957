// The caller's lists for BlkDriver's batch calls, checked and copied once before anything is
// planned: an argument that is not an array of objects is refused with E_INVALID_ARGUMENT naming
// it by kind (lib/util/shown.ts), never a TypeError from reading a field of null or a symbol in a
// message. Each entry's fields are read once; the plan uses the copies.

import { UsageError } from '../../lib/errors.js';
import { safeIsArray, shown } from '../../lib/util/shown.js';
import { plainBytes } from '../../lib/util/plain-bytes.js';
import type { SectorRange } from './plan.js';

/** An entry of `list` (index `i`) as an object, or E_INVALID_ARGUMENT naming `what`. */
function entry(list: readonly unknown[], i: number, what: string, shape: string): Record<string, unknown> {
  const e: unknown = list[i];
  if (typeof e !== 'object' || e === null) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what}: entry ${i} must be ${shape}, got ${shown(e)}`, `pass an array of ${shape}`);
  }
  return e as Record<string, unknown>;
}

/** `list` when it is an array, else E_INVALID_ARGUMENT naming `what`. */
function arrayOf(list: unknown, what: string, shape: string): readonly unknown[] {
  if (!safeIsArray(list)) throw new UsageError('E_INVALID_ARGUMENT', `${what} takes an array of ${shape}, got ${shown(list)}`, `pass an array of ${shape}`);
  return list;
}

/** readMany / discard / writeZeroes ranges: copies of { sector, sectors } (checked against the device later). */
export function sectorRanges(ranges: unknown, what: string): SectorRange[] {
  const list = arrayOf(ranges, what, '{ sector, sectors }');
  const out: SectorRange[] = [];
  for (let i = 0; i < list.length; i++) {
    const { sector, sectors } = entry(list, i, what, '{ sector, sectors }');
    out.push({ sector: sector as number, sectors: sectors as number });
  }
  return out;
}

/** write / writeMany data: a Uint8Array, else E_INVALID_ARGUMENT naming `what`. */
export function writeData(data: unknown, what: string): Uint8Array {
  const view = plainBytes(data); // what the driver copies is the array's own memory, whatever its own properties say
  if (!view) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what}: data must be a Uint8Array, got ${shown(data)}`, 'pass the bytes to write as a Uint8Array (a Buffer is one)');
  }
  return view;
}

/** writeMany writes: copies of { sector, data } with data a Uint8Array. */
export function blkWrites(writes: unknown): { sector: number; data: Uint8Array }[] {
  const list = arrayOf(writes, 'writeMany', '{ sector, data }');
  const out: { sector: number; data: Uint8Array }[] = [];
  for (let i = 0; i < list.length; i++) {
    const { sector, data } = entry(list, i, 'writeMany', '{ sector, data }');
    out.push({ sector: sector as number, data: writeData(data, `writeMany entry ${i}`) });
  }
  return out;
}

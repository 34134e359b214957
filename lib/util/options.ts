// The one option parser of the SDK: the options after `?` in a device address
// (lib/address.ts, e.g. sim:blk?queues=4&ro=1). Each opener — and each reference-device model —
// declares a schema of typed specs (int, flag, choice, list, text); parseOptions refuses unknown
// keys and values that do not fit with E_BAD_ADDRESS and a hint, and returns the values typed.
// A spec can also check a value given through the API (checkValue, E_INVALID_ARGUMENT), so a
// limit is written once whichever way the value arrives.
//
// It lives with the ground (lib/util) because every layer that opens something needs it, the
// reference device (lib/sim) included, which may import nothing from the driver side.

import damerauLevenshtein from 'damerau-levenshtein';
import { UsageError } from '../errors.js';
import { rendered, safeIsArray, shown } from './shown.js';

/** One option's type: how its text reads as a value, and which values fit. */
export interface OptionSpec<T> {
  /** What a fitting value looks like, for messages: "an integer from 1 to 64". */
  readonly expects: string;
  /** The value `text` stands for, or undefined when it does not fit. */
  parse(text: string): T | undefined;
  /** Whether `value` (given through the API rather than as text) fits. */
  fits(value: unknown): value is T;
}

/** An opener's options: key → spec. */
export type OptionSchema = Readonly<Record<string, OptionSpec<unknown>>>;

/** The values parseOptions returns for `S`: each key optional (absent when not given). */
export type OptionValues<S extends OptionSchema> = { -readonly [K in keyof S]?: S[K] extends OptionSpec<infer T> ? T : never };

/**
 * A decimal integer from `min` to `max` (safe integers; "0x10", "1e3", "1.5" and "" do not fit);
 * with powerOfTwo, a power of two as well (queue sizes, virtio 1.2 §2.7).
 */
export function int(min: number, max: number, opts: { powerOfTwo?: boolean } = {}): OptionSpec<number> {
  const fits = (v: unknown): v is number =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max && (!opts.powerOfTwo || (v > 0 && (v & (v - 1)) === 0));
  return {
    expects: `${opts.powerOfTwo ? 'a power of two' : 'an integer'} from ${min} to ${max}`,
    parse: (text) => {
      const n = /^-?[0-9]+$/.test(text) ? Number(text) : NaN;
      return fits(n) ? n : undefined;
    },
    fits,
  };
}

/** 0 or 1 (false or true). */
export function flag(): OptionSpec<boolean> {
  return {
    expects: '0 or 1',
    parse: (text) => (text === '1' ? true : text === '0' ? false : undefined),
    fits: (v): v is boolean => typeof v === 'boolean',
  };
}

/** One of `values`, spelt exactly. */
export function choice<const T extends string>(...values: T[]): OptionSpec<T> {
  const fits = (v: unknown): v is T => typeof v === 'string' && (values as string[]).includes(v);
  return { expects: `one of ${values.join(', ')}`, parse: (text) => (fits(text) ? text : undefined), fits };
}

/** A comma-separated list of `values` (empty items skipped): fault=stop-stuck,config-churn. */
export function listOf<const T extends string>(...values: T[]): OptionSpec<T[]> {
  const one = (v: unknown): v is T => typeof v === 'string' && (values as string[]).includes(v);
  const fits = (v: unknown): v is T[] => Array.isArray(v) && v.every(one);
  return {
    expects: `a comma-separated list of ${values.join(', ')}`,
    parse: (text) => {
      const items = text.split(',').filter(Boolean);
      return fits(items) ? items : undefined;
    },
    fits,
  };
}

/** Text matching `re` (anchored by the caller); `expects` describes it: "a MAC address like 52:54:00:12:34:56". */
export function text(re: RegExp, expects: string): OptionSpec<string> {
  const fits = (v: unknown): v is string => typeof v === 'string' && re.test(v);
  return { expects, parse: (t) => (fits(t) ? t : undefined), fits };
}

/** Where parsed options came from, for the E_BAD_ADDRESS message and its hint. */
export interface OptionSource {
  /** The address as written (message prefix). */
  address: string;
  /** What the person can do: the options this address takes. */
  hint: string;
}

/** E_BAD_ADDRESS (UsageError) for `address`, with `hint`. */
export function badAddress(address: string, message: string, hint: string): UsageError {
  return new UsageError('E_BAD_ADDRESS', `${address}: ${message}`, hint);
}

/**
 * Checks `raw` (key → text, as lib/address.ts parsed it) against `schema` and returns the typed
 * values. Throws E_BAD_ADDRESS (UsageError, with `source.hint`) for a key the schema does not
 * have or a value that does not fit its spec.
 */
export function parseOptions<S extends OptionSchema>(raw: Readonly<Record<string, string>>, schema: S, source: OptionSource): OptionValues<S> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of Object.entries(raw)) {
    if (!Object.hasOwn(schema, key)) {
      const known = Object.keys(schema);
      const near = closestKey(key, known);
      throw badAddress(source.address, `unknown option "${key}" (${known.length ? `known: ${known.join(', ')}` : 'it takes no options'})${near === undefined ? '' : `; did you mean "${near}"?`}`, source.hint);
    }
    const spec = schema[key]!;
    const v = spec.parse(value);
    if (v === undefined) throw badAddress(source.address, `${key}=${value} must be ${spec.expects}`, source.hint);
    out[key] = v;
  }
  return out as OptionValues<S>;
}

/**
 * `value` if it fits `spec`; throws E_INVALID_ARGUMENT (UsageError) naming `what`, with `hint`,
 * otherwise (the value named by kind when it is not a primitive: lib/util/shown.ts).
 * For values given through the API (createSimDevice's queueMaxSize), checked by the same spec as
 * the address option.
 */
export function checkValue<T>(spec: OptionSpec<T>, value: unknown, what: string, hint?: string): T {
  if (!spec.fits(value)) throw new UsageError('E_INVALID_ARGUMENT', `${what} must be ${spec.expects}, got ${shown(value)}`, hint);
  return value;
}

/**
 * The keys an API options object of type `T` may have, as key → true: written as an object literal
 * typed OptionKeys<T>, the compiler holds the list to the interface (a key left out or added is a
 * type error), so the runtime check and the documented type cannot drift apart.
 */
export type OptionKeys<T> = { readonly [K in keyof Required<T>]: true };

/**
 * `value` as an options object, read once: a plain object holding each key of `known` that `value`
 * gives (own or inherited, a getter read exactly once), {} for undefined — so a getter or a Proxy
 * cannot answer the checks one thing and the call another. Throws E_INVALID_ARGUMENT (UsageError)
 * naming `what` for null, an array or any primitive (a symbol, a string, a number…), which would
 * otherwise read as "no options" or throw a TypeError at the first field read; and, for a key not in
 * `known` anywhere `value`'s own reads can see it (own or inherited short of Object.prototype,
 * enumerable or not: onlyKnownKeys), one naming the key and listing the known ones, the closest
 * known spelling as the hint. Symbol keys are not options and are ignored. A Proxy whose traps
 * throw surfaces the caller's own error. `read`: keys the caller had to read from `value` before
 * (a discriminator that says which keys are known, as createSimDevice's `type`), with the values
 * it read and checked — the copy takes those, and `value` is not read for them again.
 */
export function optionsObject<T extends object>(value: T | undefined, what: string, known: OptionKeys<T>, read: Partial<T> = {}): T {
  if (value === undefined) return {} as T;
  if (typeof value !== 'object' || value === null || safeIsArray(value)) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what} must be an object, got ${shown(value)}`,
      `pass an object of the documented fields (${knownList(Object.keys(known))}), or leave it out`);
  }
  const keys = Object.keys(known);
  onlyKnownKeys(value, keys, what);
  const copy: Record<string, unknown> = {};
  for (const key of keys) {
    // read once: the call uses this copy
    const v: unknown = Object.hasOwn(read, key) ? (read as Record<string, unknown>)[key] : (value as Record<string, unknown>)[key];
    if (v !== undefined) copy[key] = v;
  }
  return copy as T;
}

/** How deep a prototype chain onlyKnownKeys follows before refusing the object (a Proxy can make one endless). */
const MAX_PROTOTYPE_DEPTH = 32;

/**
 * Throws E_INVALID_ARGUMENT (UsageError) for the first string key of `value` not in `known` that a
 * property read on `value` can see — own or inherited from any prototype short of Object.prototype
 * (a class's `constructor` aside), enumerable or not — naming `what`, the key (bounded:
 * lib/util/shown.ts rendered) and the known keys; the hint is the closest known spelling when there
 * is one. Also for a prototype chain deeper than 32. optionsObject's key check, for an object whose
 * kind was checked otherwise.
 */
export function onlyKnownKeys(value: object, known: readonly string[], what: string): void {
  let o: object | null = value;
  for (let depth = 0; o !== null && o !== Object.prototype; depth++, o = Reflect.getPrototypeOf(o)) {
    if (depth > MAX_PROTOTYPE_DEPTH) {
      throw new UsageError('E_INVALID_ARGUMENT', `${what}: a prototype chain deeper than ${MAX_PROTOTYPE_DEPTH}`, 'pass a plain object of the documented fields');
    }
    for (const key of Object.getOwnPropertyNames(o)) {
      if (known.includes(key) || (depth > 0 && key === 'constructor')) continue;
      const near = closestKey(key, known);
      throw new UsageError('E_INVALID_ARGUMENT', `${what}: unknown option ${rendered(key)} (${knownList(known)})`,
        near === undefined ? 'leave it out, or use one of the known options' : `did you mean "${near}"?`);
    }
  }
}

function knownList(known: readonly string[]): string {
  return known.length ? `known: ${known.join(', ')}` : 'it takes no options';
}

/**
 * The known key `key` most likely stands for: one spelt the same but for case, else the nearest by
 * Damerau–Levenshtein distance (insertions, deletions, substitutions and swaps of neighbours, from
 * the damerau-levenshtein package) within a third of the key's length (at least 1, at most 3);
 * undefined when none is that near.
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  if (key.length > 64) return undefined;
  const lower = key.toLowerCase();
  const same = known.find((k) => k.toLowerCase() === lower);
  if (same !== undefined) return same;
  const limit = Math.min(3, Math.max(1, Math.floor(key.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const k of known) {
    const d = damerauLevenshtein(lower, k.toLowerCase()).steps;
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * `value` checked against `spec` when it is given (checkValue), or undefined when it is not: for
 * an optional field of an API options object (OpenOptions.interrupts, BlkOpenOptions.layout …).
 * Throws E_INVALID_ARGUMENT (UsageError) naming `what`, the value and what fits.
 */
export function optionalValue<T>(spec: OptionSpec<T>, value: unknown, what: string, hint?: string): T | undefined {
  return value === undefined ? undefined : checkValue(spec, value, what, hint);
}

/** An array of integers from `min` to `max` (feature bit lists). */
export function intList(min: number, max: number): OptionSpec<number[]> {
  const one = int(min, max);
  const fits = (v: unknown): v is number[] => Array.isArray(v) && v.every((n) => one.fits(n));
  return {
    expects: `an array of integers from ${min} to ${max}`,
    parse: (t) => {
      const items = t.split(',').filter(Boolean).map((s) => one.parse(s));
      return items.every((n) => n !== undefined) ? (items as number[]) : undefined;
    },
    fits,
  };
}

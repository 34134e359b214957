// How an argument a caller passed is named in an error message without trusting it: String() of an
// object without a prototype throws, and an object's own toString or Symbol.toPrimitive may throw
// or lie, so only primitives are shown by value and everything else by its kind; rendered() shows
// structure too, bounded.

import { types } from 'node:util';

const isProxy = (v: object): boolean => types.isProxy(v);

/**
 * `value` for an error message: numbers, booleans, bigints (`8n`) by value; strings quoted and
 * escaped as JSON writes them, cut at 40 characters (so "80" is told from 80, and a newline or a
 * terminal escape in a caller's string cannot forge a line of the message); anything else by kind.
 */
export function shown(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'string':
      return value.length > 40 ? `${JSON.stringify(value.slice(0, 40))}…` : JSON.stringify(value);
    case 'undefined':
      return 'undefined';
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      return value === null ? 'null' : safeIsArray(value) ? 'an array' : 'an object';
  }
}

/** Array.isArray, which throws for a revoked Proxy: false for one (it is 'an object' to shown()). */
export function safeIsArray(value: unknown): value is unknown[] {
  try {
    return Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * What a callback threw, for a message: an Error's message, anything else as shown() names it (a
 * thrown object without a prototype, or with a throwing `message` getter, must not make the report
 * itself throw).
 */
export function thrownMessage(thrown: unknown): string {
  try {
    if (thrown instanceof Error && typeof thrown.message === 'string') return thrown.message;
  } catch {
    // a throwing getter: named by kind below
  }
  return shown(thrown);
}

/**
 * `value instanceof cls`, false when asking throws: a thrown Proxy's getPrototypeOf trap may throw,
 * and classifying what a caller's code threw must not throw in turn.
 */
export function isInstance<C>(value: unknown, cls: abstract new (...args: never[]) => C): value is C {
  try {
    return value instanceof cls;
  } catch {
    return false;
  }
}

const RENDER_DEPTH = 2;
const RENDER_ENTRIES = 4;
const RENDER_STRING = 40;
const RENDER_TOTAL = 120;

/**
 * `value` for an error message, JSON-like but bounded and never throwing: for a value read from an
 * untrusted file (or handed over by a caller) that JSON.stringify would render without limit or
 * throw on (a cycle, a bigint, an array nested thousands deep). Strings are quoted, escaped and cut
 * at 40 characters; numbers as they are (Infinity, NaN: what 1e400 parses to); bigints as `5n`;
 * arrays and objects to depth 2 with at most 4 entries each ("[[…]]", `{"a": 1, …}`); a Proxy, a
 * getter and a function by kind (never run); the whole cut at 120 characters.
 */
export function rendered(value: unknown): string {
  let text: string;
  try {
    text = render(value, 0);
  } catch {
    text = shown(value);
  }
  return text.length > RENDER_TOTAL ? `${text.slice(0, RENDER_TOTAL - 1)}…` : text;
}

/** A string quoted and escaped as JSON, cut (by whole characters and escapes) at 40 characters inside the quotes. */
function quoted(s: string): string {
  let out = '';
  for (const ch of s) {
    const escaped = JSON.stringify(ch).slice(1, -1);
    if (out.length + escaped.length > RENDER_STRING) return `"${out}…"`;
    out += escaped;
  }
  return `"${out}"`;
}

function render(value: unknown, depth: number): string {
  if (typeof value === 'string') return quoted(value);
  if (typeof value !== 'object' || value === null) return shown(value);
  if (isProxy(value)) return 'a Proxy';
  const array = safeIsArray(value);
  if (depth >= RENDER_DEPTH) return array ? '[…]' : '{…}';
  // An array's own length (never Object.keys: a caller's array may hold millions of entries).
  const keys = array ? [...Array(Math.min((value as unknown[]).length, RENDER_ENTRIES)).keys()].map(String) : Object.keys(value);
  const count = array ? (value as unknown[]).length : keys.length;
  const parts: string[] = [];
  for (const key of keys.slice(0, RENDER_ENTRIES)) {
    const d = Object.getOwnPropertyDescriptor(value, key);
    const v = d === undefined ? (array ? 'a hole' : 'undefined') : 'value' in d ? render(d.value, depth + 1) : 'a getter';
    parts.push(array ? v : `${quoted(key)}: ${v}`);
  }
  if (count > RENDER_ENTRIES) parts.push(`… ${count} in all`);
  return array ? `[${parts.join(', ')}]` : `{${parts.join(', ')}}`;
}

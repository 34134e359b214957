// How an argument a caller passed is named in an error message without trusting it: String() of an
// object without a prototype throws, and an object's own toString or Symbol.toPrimitive may throw
// or lie, so only primitives are shown by value and everything else by its kind.

/** `value` for an error message: numbers, strings (as they are, cut at 40 characters), booleans, bigints by value; anything else by kind. */
export function shown(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'string':
      return value.length > 40 ? `${value.slice(0, 40)}…` : value;
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

// The memory of a Uint8Array the caller passed, read from the array's internal slots: what a driver
// copies from or into is the array's own memory, whatever its own properties, its prototype or a
// Proxy around it say. Used wherever a driver takes bytes from its caller (blk read/write targets,
// net frames and headers, console output).

/** The TypedArray getters themselves: a subclass or a Proxy cannot answer for them (they throw for a Proxy). */
const typedProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
const intrinsic = <R>(name: string) => Object.getOwnPropertyDescriptor(typedProto, name)!.get! as (this: unknown) => R;
const typedBuffer = intrinsic<ArrayBufferLike>('buffer');
const typedOffset = intrinsic<number>('byteOffset');
const typedLength = intrinsic<number>('length');
/** The kind of typed array `value` is ('Uint8Array', 'Int8Array', …), from its internal slot; undefined for anything else. */
const typedKind = Object.getOwnPropertyDescriptor(typedProto, Symbol.toStringTag)!.get! as (this: unknown) => string | undefined;

/**
 * A plain Uint8Array over the same memory as `given` when it is a Uint8Array (a Buffer is one; one
 * from another realm or with another prototype too), told by its internal slots through the
 * TypedArray getters themselves, so an own `length`, a subclass's `subarray()`, a prototype swapped
 * onto another kind of typed array, or a Proxy cannot decide where the driver reads or writes;
 * undefined for anything else (a Proxy, a detached buffer, another kind).
 */
export function plainBytes(given: unknown): Uint8Array | undefined {
  if (typedKind.call(given) !== 'Uint8Array') return undefined;
  try {
    return new Uint8Array(typedBuffer.call(given), typedOffset.call(given), typedLength.call(given));
  } catch {
    return undefined;
  }
}

// Copies of byte ranges that the caller owns outright, without zeroing them first: a driver that
// returns a fresh copy per request (a blk read) otherwise pays for zeroing the new ArrayBuffer and
// then for the copy over it; under TCG the zeroing was as costly as the copy (bench/README.md).

/**
 * A copy of `source[start, end)` in an ArrayBuffer of exactly that many bytes (`byteOffset` 0),
 * its own (nothing else in it: safe to transfer, clone or send). The memory comes from
 * Buffer.allocUnsafeSlow, so it is not zeroed first; every byte is written by the copy. A plain
 * Uint8Array, not a Buffer (whose slice() would be a view, not a copy).
 */
export function copyBytes(source: Uint8Array, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n <= 0) return new Uint8Array(0);
  const raw = Buffer.allocUnsafeSlow(n);
  const out = new Uint8Array(raw.buffer, raw.byteOffset, n);
  out.set(source.subarray(start, end));
  return out;
}

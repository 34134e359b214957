// Copies of small byte ranges carved out of shared blocks, the way Node's Buffer pool carves small
// Buffers: a driver that returns a fresh 4 KiB copy per request (a blk read) otherwise allocates
// one ArrayBuffer per request, which is external memory to V8 and a large part of its GC work on
// a busy queue (bench/README.md, where the time goes in the guest).

import { markAsUntransferable } from 'node:worker_threads';

/** Size of one shared block (bytes). */
export const COPY_SLAB_BYTES = 64 * 1024;
/** Copies up to this many bytes come from a shared block; longer ones get their own ArrayBuffer. */
export const COPY_SLAB_MAX = 4096;

let block = newBlock();
let used = 0;

function newBlock(): Uint8Array {
  // Not zeroed (Buffer.allocUnsafeSlow, outside Node's own pool): zeroing 64 KiB per block costs
  // what one ArrayBuffer per copy did, and every byte handed out is first written by its copy. A
  // plain Uint8Array over it, not a Buffer (whose slice() would be a view, not a copy).
  const raw = Buffer.allocUnsafeSlow(COPY_SLAB_BYTES);
  const b = new Uint8Array(raw.buffer, raw.byteOffset, COPY_SLAB_BYTES);
  // A shared block must not be transferred (postMessage with a transfer list) out from under the
  // other copies in it: like Node's own Buffer pool, it is cloned instead.
  markAsUntransferable(b.buffer);
  return b;
}

/**
 * A copy of `source[start, end)`. Up to {@link COPY_SLAB_MAX} bytes it is a view into a shared
 * {@link COPY_SLAB_BYTES}-byte block (its `byteOffset` is then not 0 and its `buffer` holds other
 * copies and bytes not yet written, as with Node's pooled Buffers from allocUnsafe); `.slice()` it
 * for an ArrayBuffer of its own, e.g. before sending `buffer` anywhere.
 */
export function copyBytes(source: Uint8Array, start: number, end: number): Uint8Array {
  const n = end - start;
  if (n > COPY_SLAB_MAX || n <= 0) return source.slice(start, end);
  if (used + n > COPY_SLAB_BYTES) {
    block = newBlock();
    used = 0;
  }
  const out = block.subarray(used, used + n);
  used += (n + 7) & ~7; // 8-byte aligned, so a copy can be viewed as 64-bit words
  out.set(source.subarray(start, end));
  return out;
}

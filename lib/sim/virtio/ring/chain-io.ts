// Byte access to a fetched chain as one contiguous stream, whatever the segmentation: virtio 1.2
// §2.6.4 (message framing) says the device must not assume any particular arrangement of
// descriptors, so a header may be split across segments and data may share one with it.

import type { GuestMemory } from '../../../mem/dma.js';
import type { Segment } from './chain.js';

/** Copies `len` bytes starting at stream offset `offset` of `segments` out of driver memory. */
export function gather(mem: GuestMemory, segments: Segment[], offset: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let done = 0;
  forEachPiece(segments, offset, len, (addr, pieceLen) => {
    out.set(mem.view(addr, pieceLen), done);
    done += pieceLen;
  });
  return out;
}

/** Copies `data` into `segments` starting at stream offset `offset`. */
export function scatter(mem: GuestMemory, segments: Segment[], offset: number, data: Uint8Array): void {
  let done = 0;
  forEachPiece(segments, offset, data.length, (addr, pieceLen) => {
    mem.view(addr, pieceLen).set(data.subarray(done, done + pieceLen));
    done += pieceLen;
  });
}

function forEachPiece(segments: Segment[], offset: number, len: number, piece: (addr: bigint, len: number) => void): void {
  let skip = offset;
  let left = len;
  for (const seg of segments) {
    if (left === 0) return;
    if (skip >= seg.len) {
      skip -= seg.len;
      continue;
    }
    const n = Math.min(seg.len - skip, left);
    piece(seg.addr + BigInt(skip), n);
    skip = 0;
    left -= n;
  }
  if (left > 0) throw new RangeError(`chain access at ${offset}+${len} runs past the segments`);
}

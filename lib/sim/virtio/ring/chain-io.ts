// Byte access to a fetched chain as one contiguous stream, whatever the segmentation: virtio 1.2
// §2.6.4 (message framing) says the device must not assume any particular arrangement of
// descriptors, so a header may be split across segments and data may share one with it.
//
// Every request goes through here, so the loops take a view of each whole segment (its range was
// checked when the chain was fetched, and is checked again by the view) and index into it: no
// closure, no BigInt arithmetic (the segment's numeric address, GuestMemory.regionAt), one copy.

import type { GuestMemory } from '../../../mem/dma.js';
import { regionByNumber, type ChainSegment } from './chain.js';

/** The bytes of `seg`, in place: by its numeric address when the memory has that fast path, else a view (which checks). */
function segmentBytes(mem: GuestMemory, seg: ChainSegment): Uint8Array {
  const r = regionByNumber(mem, seg.at, seg.len);
  if (r === undefined) return mem.view(seg.addr, seg.len);
  const from = seg.at - r.start;
  return r.bytes.subarray(from, from + seg.len);
}

/** Copies `len` bytes starting at stream offset `offset` of `segments` out of driver memory. */
export function gather(mem: GuestMemory, segments: ChainSegment[], offset: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let skip = offset;
  let done = 0;
  for (let i = 0; i < segments.length && done < len; i++) {
    const seg = segments[i]!;
    if (skip >= seg.len) {
      skip -= seg.len;
      continue;
    }
    const n = Math.min(seg.len - skip, len - done);
    out.set(segmentBytes(mem, seg).subarray(skip, skip + n), done);
    skip = 0;
    done += n;
  }
  if (done < len) throw runsPast(offset, len);
  return out;
}

/** Copies `data` into `segments` starting at stream offset `offset`. */
export function scatter(mem: GuestMemory, segments: ChainSegment[], offset: number, data: Uint8Array): void {
  const len = data.length;
  let skip = offset;
  let done = 0;
  for (let i = 0; i < segments.length && done < len; i++) {
    const seg = segments[i]!;
    if (skip >= seg.len) {
      skip -= seg.len;
      continue;
    }
    const n = Math.min(seg.len - skip, len - done);
    segmentBytes(mem, seg).set(n === len ? data : data.subarray(done, done + n), skip);
    skip = 0;
    done += n;
  }
  if (done < len) throw runsPast(offset, len);
}

/** Writes one byte at stream offset `offset` of `segments` (a blk status byte, a net header flag). */
export function putByte(mem: GuestMemory, segments: ChainSegment[], offset: number, value: number): void {
  let skip = offset;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (skip < seg.len) {
      const r = regionByNumber(mem, seg.at, seg.len);
      if (r) r.bytes[seg.at - r.start + skip] = value;
      else mem.view(seg.addr, seg.len)[skip] = value;
      return;
    }
    skip -= seg.len;
  }
  throw runsPast(offset, 1);
}

function runsPast(offset: number, len: number): RangeError {
  return new RangeError(`chain access at ${offset}+${len} runs past the segments`);
}

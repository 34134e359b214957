// Test frames for the net checks in the VM: Ethernet II to the peer's MAC with a local
// experimental EtherType (IEEE 802 0x88B5), carrying a stream id, a sequence number and a checksum
// over a payload derived from them, so the receiver can tell each frame apart and see corruption.
//
//   dst[6] src[6] type[2] | magic u32 | stream u8 | seq u32 | length u16 | checksum u32 | payload…

import { fnv1a, randomInt, seededRandom } from '../../../cli/rehearsal/random.js';
import type { NetDriver, ReceivedFrame } from '../../../drivers/net/index.js';

export const ETHERTYPE = 0x88b5;
const MAGIC = 0x55564e54; // "UVNT"
const HEADER = 14;
const META = 15;

export function frameFor(dst: Uint8Array, src: Uint8Array, stream: number, seq: number, length: number): Uint8Array {
  const f = new Uint8Array(length);
  f.set(dst, 0);
  f.set(src, 6);
  const v = new DataView(f.buffer);
  v.setUint16(12, ETHERTYPE);
  for (let i = HEADER + META; i < length; i++) f[i] = (seq * 13 + stream * 7 + i) & 0xff;
  v.setUint32(HEADER, MAGIC, true);
  v.setUint8(HEADER + 4, stream);
  v.setUint32(HEADER + 5, seq, true);
  v.setUint16(HEADER + 9, length, true);
  v.setUint32(HEADER + 11, fnv1a(f.subarray(HEADER + META)), true);
  return f;
}

export interface Parsed {
  stream: number;
  seq: number;
  ok: boolean;
}

/** null for a frame that is not ours (another EtherType); ok false for one that is ours but damaged. */
export function parse(frame: Uint8Array, me: Uint8Array): Parsed | null {
  if (frame.length < HEADER + META) return null;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.length);
  if (v.getUint16(12) !== ETHERTYPE) return null;
  const stream = v.getUint8(HEADER + 4);
  const seq = v.getUint32(HEADER + 5, true);
  const ok = v.getUint32(HEADER, true) === MAGIC && v.getUint16(HEADER + 9, true) === frame.length &&
    v.getUint32(HEADER + 11, true) === fnv1a(frame.subarray(HEADER + META)) && me.every((b, i) => frame[i] === b);
  return { stream, seq, ok };
}

/** Counts, per stream, how often each sequence number arrived, and damaged frames. */
export class Receiver {
  readonly counts = new Map<number, Map<number, number>>();
  corrupted = 0;
  foreign = 0;

  constructor(net: NetDriver) {
    net.onFrame((f: ReceivedFrame) => {
      const p = parse(f.frame, net.mac);
      if (!p) {
        this.foreign++;
        return;
      }
      if (!p.ok) {
        this.corrupted++;
        return;
      }
      const m = this.counts.get(p.stream) ?? new Map<number, number>();
      m.set(p.seq, (m.get(p.seq) ?? 0) + 1);
      this.counts.set(p.stream, m);
    });
  }

  /** For stream s with n frames sent: received exactly once, missing, received more than once. */
  verdict(stream: number, sent: number): { sent: number; once: number; missing: number; duplicated: number; unexpected: number } {
    const m = this.counts.get(stream) ?? new Map<number, number>();
    let once = 0;
    let duplicated = 0;
    for (let seq = 0; seq < sent; seq++) {
      const c = m.get(seq) ?? 0;
      if (c === 1) once++;
      if (c > 1) duplicated++;
    }
    const unexpected = [...m.keys()].filter((seq) => seq >= sent).length;
    return { sent, once, missing: sent - once - duplicated, duplicated, unexpected };
  }

  received(stream: number): number {
    return this.counts.get(stream)?.size ?? 0;
  }
}

/**
 * Sends `count` frames of stream `stream` from `net` to `dst`, `window` at a time, sizes 60–1514
 * from a seeded generator. `between(i)` runs before frame i is sent (e.g. a stop/reinit midway).
 */
export async function sendStream(net: NetDriver, dst: Uint8Array, stream: number, count: number,
  options: { window?: number; between?: (i: number) => Promise<void> | void } = {}): Promise<void> {
  const rng = seededRandom(stream * 1000 + 7);
  const window = options.window ?? 8;
  const inFlight = new Set<Promise<void>>();
  try {
    for (let seq = 0; seq < count; seq++) {
      await options.between?.(seq);
      while (inFlight.size >= window) await Promise.race(inFlight);
      const p: Promise<void> = net.send(frameFor(dst, net.mac, stream, seq, randomInt(rng, 60, 1514))).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  } catch (e) {
    // A step that fails part-way must not leave sends behind to be rejected, unhandled, by a later close().
    await Promise.allSettled(inFlight);
    throw e;
  }
  await Promise.all(inFlight);
}

/** Waits until `done()` or the deadline; then a short settle so late duplicates would be seen. */
export async function waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  return done();
}

// The driver-only bound for bench/rings.ts: the same driver virtqueue (split or packed, same size,
// INDIRECT_DESC and EVENT_IDX, the same two-segment blk FLUSH chains) against a device loop that
// does no device work — it returns every available chain at once, checking nothing — run
// synchronously with no event loop and no promises. What the full path costs beyond this is the
// reference device plus the request/promise layer; this is the ceiling the reference device can
// approach, measured in the same process as it.

import { HeapDmaAllocator } from '../lib/mem/dma.js';
import { PackedDesc, PackedFlag, SplitAvail, SplitUsed } from '../lib/spec/index.js';
import { createVirtqueue, type Virtqueue } from '../lib/virtio/queue/index.js';
import type { Layout, Segment } from '../lib/virtio/queue/types.js';

// Split: struct virtq_avail / virtq_used offsets (virtio 1.2 §2.7.6, §2.7.8). Packed: struct pvirtq_desc (§2.8.13).
const { IDX: AVAIL_IDX, RING: AVAIL_RING } = SplitAvail;
const { IDX: USED_IDX, RING: USED_RING } = SplitUsed;
const { LEN: P_LEN, FLAGS: P_FLAGS } = PackedDesc;
const { AVAIL: P_AVAIL, USED: P_USED } = PackedFlag;

/** A device that marks every available chain used with `len` bytes written; returns how many. */
type NullDevice = () => number;

function splitDevice(dma: HeapDmaAllocator, vq: Virtqueue<unknown>, size: number, len: number): NullDevice {
  const a = dma.view(vq.addresses.driver, AVAIL_RING + 2 * size + 2);
  const u = dma.view(vq.addresses.device, USED_RING + 8 * size + 2);
  const av = new DataView(a.buffer, a.byteOffset, a.byteLength);
  const us = new DataView(u.buffer, u.byteOffset, u.byteLength);
  let next = 0;
  let used = 0;
  return () => {
    const idx = av.getUint16(AVAIL_IDX, true);
    let n = 0;
    for (; next !== idx; next = (next + 1) & 0xffff, n++) {
      const head = av.getUint16(AVAIL_RING + 2 * (next % size), true);
      const at = USED_RING + 8 * (used % size);
      us.setUint32(at, head, true);
      us.setUint32(at + 4, len, true);
      used = (used + 1) & 0xffff;
    }
    us.setUint16(USED_IDX, used, true);
    return n;
  };
}

function packedDevice(dma: HeapDmaAllocator, vq: Virtqueue<unknown>, size: number, len: number): NullDevice {
  const d = dma.view(vq.addresses.desc, 16 * size);
  const ring = new DataView(d.buffer, d.byteOffset, d.byteLength);
  let slot = 0;
  let wrap = true;
  return () => {
    let n = 0;
    for (;;) {
      const at = 16 * slot;
      const flags = ring.getUint16(at + P_FLAGS, true);
      // Available in this lap: AVAIL equals the wrap counter, USED differs (§2.8.1). Each chain here
      // is one ring descriptor (an indirect table), so its slot is also where it is used, and its
      // buffer id is already in place.
      if (((flags & P_AVAIL) !== 0) !== wrap || ((flags & P_USED) !== 0) === wrap) break;
      ring.setUint32(at + P_LEN, len, true);
      ring.setUint16(at + P_FLAGS, wrap ? P_AVAIL | P_USED : 0, true);
      if (++slot === size) {
        slot = 0;
        wrap = !wrap;
      }
      n++;
    }
    return n;
  };
}

/**
 * Requests per second (wall clock, and per CPU-second) of the driver's add / kick / popUsed for
 * `batch` chains at a time against a device that does nothing, for `seconds`.
 */
export function measureDriverOnly(layout: Layout, batch: number, seconds: number): { perSecond: number; perCpuSecond: number } {
  const size = 256;
  const dma = new HeapDmaAllocator();
  const vq = createVirtqueue<number>(layout, { index: 0, size, dma, features: { indirect: true, eventIdx: true }, notify: () => {} });
  const device = (layout === 'split' ? splitDevice : packedDevice)(dma, vq, size, 1);
  const reqs = Array.from({ length: batch }, () => {
    const r = dma.alloc(64);
    const readable: Segment[] = [{ addr: r.iova, len: 16 }];
    const writable: Segment[] = [{ addr: r.iova + 32n, len: 1 }];
    return { readable, writable };
  });
  let done = 0;
  const round = (): void => {
    for (let i = 0; i < batch; i++) vq.add(reqs[i]!.readable, reqs[i]!.writable, i);
    vq.kick();
    device();
    for (let e = vq.popUsed(); e; e = vq.popUsed()) done++;
  };
  for (let i = 0; i < 2000; i++) round();
  done = 0;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < until) for (let i = 0; i < 64; i++) round();
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  vq.close();
  dma.close();
  return { perSecond: done / elapsed, perCpuSecond: done / ((used.user + used.system) / 1e6) };
}

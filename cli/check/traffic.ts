// One traffic run per ring layout that the virtqueue checks (checks/queues.ts) read: chained
// requests through a small ring until it has wrapped, then with used-buffer notifications
// suppressed (counted), then one request waited on by its interrupt, then indirect chains. The
// virtqueue's own validation (lib/virtio/queue) finds bad used ids and lengths, index jumps and
// packed flags; the run keeps the first such error and where it came, and each check maps the
// code it owns (E_DEVICE_*) to its clause. Every wait is bounded by `waitMs`, named when it trips.

import { BLK_REQ_HEADER_LEN, BlkReq, DeviceType, Feature, NET_HDR_LEN, type Layout, type Segment } from '../../lib/spec/index.js';
import { TimeoutError, isUvirtioError, type UvirtioError } from '../../lib/errors.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import type { VirtioDevice } from '../../lib/virtio/device.js';
import type { Virtqueue } from '../../lib/virtio/queue/types.js';
import type { CheckContext } from './types.js';

/** A request that harms nothing, by device type: the queue it goes on and its chain in a 1 KiB buffer. */
interface Probe {
  queue: number;
  chain(buf: DmaRegion): { readable: Segment[]; writable: Segment[] };
  /** Why the device may rightly keep these chains a while (then a wait that runs out is a warning, not a failure). */
  mayHold?: string;
}

const at = (buf: DmaRegion, offset: number, len: number): Segment => ({ addr: buf.iova + BigInt(offset), len });

/** blk: a read of sector 0 (header, data, status: 3 descriptors); rng: 2 writable pieces; net: a frame on tx (header, frame). */
export const PROBES: Readonly<Record<number, Probe>> = {
  [DeviceType.BLK]: {
    queue: 0,
    chain: (buf) => {
      new DataView(buf.bytes.buffer, buf.bytes.byteOffset).setUint32(0, BlkReq.IN, true); // sector 0
      return { readable: [at(buf, 0, BLK_REQ_HEADER_LEN)], writable: [at(buf, 64, 512), at(buf, 576, 1)] };
    },
  },
  [DeviceType.RNG]: { queue: 0, chain: (buf) => ({ readable: [], writable: [at(buf, 0, 32), at(buf, 32, 32)] }) },
  [DeviceType.NET]: {
    queue: 1,
    chain: (buf) => {
      buf.bytes.fill(0xff, NET_HDR_LEN, NET_HDR_LEN + 6); // a broadcast frame: destination ff:ff:ff:ff:ff:ff
      return { readable: [at(buf, 0, NET_HDR_LEN), at(buf, NET_HDR_LEN, 60)], writable: [] };
    },
    mayHold: 'a NIC may hold transmitted frames while its network peer does not take them (QEMU does, behind a hub no one reads)',
  },
};

/** Where in the run something happened: chained requests, notifications suppressed, the interrupt wait, indirect tables. */
export type Phase = 'chains' | 'suppressed' | 'interrupt' | 'indirect';

/** What one run observed. */
export interface TrafficRun {
  /** The ring layout negotiated. */
  layout: Layout;
  /** Ring size used (at most 8, so that the ring wraps). */
  size: number;
  /** The first error the queue raised (a device fault: its code names the check), and in which phase. */
  error: { e: UvirtioError; phase: Phase } | null;
  /** A wait that ran out: what was waited for and the bound; `used`: an interrupt was waited for and the chain was used meanwhile. */
  timeout: { what: string; phase: Phase; used: boolean } | null;
  /** Probe.mayHold of the device type: a wait that ran out may be the network, not the device. */
  mayHold: string | null;
  /** Chains completed per phase. */
  completed: Record<Phase, number>;
  /** Descriptors per chain in the chained phase. */
  descsPerChain: number;
  /** Used-buffer interrupts while the driver had them suppressed, and completions meanwhile. */
  suppressedInterrupts: number;
  /** Whether the queue had an interrupt vector (else the interrupt checks are n/a). */
  interrupts: boolean;
  /** kick() calls that had chains to announce. */
  kicks: number;
  /** Of those, how many notified the device (the rest the device's NO_NOTIFY / avail_event saved). */
  notified: number;
  /** INDIRECT_DESC negotiated. */
  indirect: boolean;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the traffic on a fresh device of `layout`; never throws for what the device does. */
export async function runTraffic(ctx: CheckContext, layout: Layout): Promise<TrafficRun> {
  const probe = PROBES[ctx.t.deviceType]!;
  const waitMs = Math.max(50, Math.min(500, ctx.timeoutMs / 4));
  const size = Math.min(8, ctx.t.queueMaxSize(probe.queue));
  const run: TrafficRun = {
    layout, size, error: null, timeout: null, mayHold: probe.mayHold ?? null, completed: { chains: 0, suppressed: 0, interrupt: 0, indirect: 0 },
    descsPerChain: 0, suppressedInterrupts: 0, interrupts: false, kicks: 0, notified: 0, indirect: false,
  };
  let interrupts = 0;
  const open = async (indirectThreshold: number): Promise<{ d: VirtioDevice; vq: Virtqueue<number>; bufs: DmaRegion[] }> => {
    const d = await ctx.open({ features: { layout, indirect: true, eventIdx: true }, stateFeatures: false });
    const vq = d.setupQueue<number>(probe.queue, { size, indirectThreshold, onUsed: () => interrupts++ });
    await d.driverOk();
    const bufs = Array.from({ length: size }, () => ctx.alloc(1024));
    return { d, vq, bufs };
  };
  /** Adds `n` chains (one per buffer), kicks, and pops them all — by polling, or (byInterrupt) after the interrupt. */
  const batch = async (vq: Virtqueue<number>, bufs: DmaRegion[], n: number, phase: Phase, byInterrupt = false): Promise<boolean> => {
    for (let i = 0; i < n; i++) {
      const { readable, writable } = probe.chain(bufs[i]!);
      run.descsPerChain = readable.length + writable.length;
      // As many as fit: a chain of several descriptors in a small ring without indirect tables.
      if (i > 0 && !vq.canAdd(readable.length, writable.length)) {
        n = i;
        break;
      }
      vq.add(readable, writable, i);
    }
    run.kicks++;
    if (vq.kick()) run.notified++;
    const deadline = performance.now() + waitMs;
    const before = interrupts;
    let done = 0;
    while (done < n) {
      if (performance.now() > deadline) {
        // The chain used and no interrupt for it: the device's own doing, whatever its network does.
        const used = byInterrupt && interrupts === before && vq.usedPending();
        run.timeout = { what: byInterrupt && interrupts === before ? `a used-buffer interrupt within ${waitMs} ms${used ? ' (the chain was used)' : ''}`
          : `${n - done} of ${n} chains to be used within ${waitMs} ms`, phase, used };
        return false;
      }
      if (byInterrupt && interrupts === before) {
        await sleep(1);
        continue;
      }
      try {
        while (vq.popUsed()) {
          done++;
          run.completed[phase]++;
        }
      } catch (e) {
        if (!isUvirtioError(e)) throw e;
        run.error = { e, phase };
        return false;
      }
      if (done < n) await tick();
    }
    return true;
  };

  let dev = await open(Infinity);
  run.interrupts = dev.d.queueHasInterrupts(probe.queue);
  run.indirect = dev.d.has(Feature.INDIRECT_DESC);
  // Chained descriptors until the ring has wrapped at least twice (virtio 1.2 §2.7.5, §2.8.x wrap counters).
  const half = Math.max(1, size >> 1);
  for (let sent = 0; sent < 3 * size; sent += half) if (!(await batch(dev.vq, dev.bufs, half, 'chains'))) return run;
  // Used-buffer notifications suppressed (§2.7.7, §2.8.10): count the interrupts that still come.
  dev.vq.disableInterrupts();
  // Interrupts of the chains phase still on their way (an eventfd, a thread) are not counted.
  await sleep(10);
  const before = interrupts;
  await ctx.live();
  if (!(await batch(dev.vq, dev.bufs, half, 'suppressed'))) return run;
  await sleep(5);
  run.suppressedInterrupts = interrupts - before;
  // One request completed by its interrupt (§2.7.7.2: notifications enabled, so the device sends one).
  if (run.interrupts) {
    while (!dev.vq.enableInterrupts()) dev.vq.popUsed();
    if (!(await batch(dev.vq, dev.bufs, 1, 'interrupt', true))) return run;
  }
  // Indirect tables (§2.7.5.3, §2.8.19): every chain through one.
  if (run.indirect) {
    await dev.d.close();
    dev = await open(2);
    await batch(dev.vq, dev.bufs, size, 'indirect');
  }
  return run;
}

/** The run of `layout` for this group (one per group: the checks of a layout share it). */
export function trafficOf(ctx: CheckContext, layout: Layout): Promise<TrafficRun> {
  return ctx.memo(`traffic:${layout}`, () => runTraffic(ctx, layout));
}

/**
 * One request on queue 0 of a fresh polled device (split, no indirect): `build` lays the chain out
 * in a 4 KiB buffer; resolves with the used len and the buffer (the check's, still valid), or
 * rejects with the queue's error or E_REQUEST_TIMEOUT after the check's bound. The device is
 * closed (reset) before it settles: a transport has one VirtioDevice at a time, so a check may
 * send another request after this one.
 */
export async function oneRequest(ctx: CheckContext, build: (buf: DmaRegion) => { readable: Segment[]; writable: Segment[] }): Promise<{ len: number; buf: DmaRegion }> {
  const d = await ctx.open({ interrupts: 'poll', stateFeatures: false, features: { layout: 'split', indirect: false } });
  try {
    return await requestOn(ctx, d, build);
  } finally {
    // A close that fails (the check ended under it) still lets go of the transport; the request's outcome is what counts.
    await d.close().catch(() => undefined);
  }
}

async function requestOn(ctx: CheckContext, d: VirtioDevice, build: (buf: DmaRegion) => { readable: Segment[]; writable: Segment[] }): Promise<{ len: number; buf: DmaRegion }> {
  const vq = d.setupQueue<number>(0, { size: Math.min(8, ctx.t.queueMaxSize(0)) });
  await d.driverOk();
  await ctx.live();
  const buf = ctx.alloc(4096);
  const { readable, writable } = build(buf);
  vq.add(readable, writable, 0);
  vq.kick();
  const deadline = performance.now() + ctx.timeoutMs / 2;
  for (;;) {
    const used = vq.popUsed();
    if (used) return { len: used.len, buf };
    if (performance.now() > deadline) {
      throw new TimeoutError('E_REQUEST_TIMEOUT', `the request was not used within ${Math.round(ctx.timeoutMs / 2)} ms`,
        'the device did not answer within half the check\'s bound: raise --check-timeout for a slow device');
    }
    await tick();
  }
}

// The uvirtio side of bench/vm-net.ts (and of bench/vm-net-profile.ts): one timed window in which one
// of the test VM's two virtio-net functions sends frames as fast as NetDriver lets it and the other
// counts what it receives, both over VFIO.

import { fork, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { NetDriver } from '../drivers/net/index.js';
import { openTransport } from '../lib/open.js';
import { Feature } from '../lib/spec/index.js';
import type { VirtioTransport } from '../lib/virtio/device.js';

/** The two NICs of scripts/vm/qemu.mjs, on one hub: A with a split ring, B with a packed ring (packed=on). */
export const NICS = { split: '0000:03:00.0', packed: '0000:04:00.0' } as const;
/** A NIC, named by its ring layout. */
export type Ring = keyof typeof NICS;
/** Sender → receiver. */
export const DIRECTIONS: [Ring, Ring][] = [['split', 'packed'], ['packed', 'split']];
/** Frame sizes in bytes, Ethernet header included, no FCS. */
export const SIZES = [64, 1500] as const;
/** A local experimental EtherType (IEEE 802): the receiver counts only these frames. */
const ETHERTYPE = 0x88b5;
/** Sends kept in flight: the transmit ring's size (the driver's default, at most 256). */
const WINDOW = 256;
const WARMUP_MS = 500;
/** Bound on the wait for the sends in flight after a window to complete (a few ms when nothing is stuck). */
export const DRAIN_MS = 3_000;
/** Bounds on the sender process (processes: 2): its NIC open, and its report after the window's end. */
const SENDER_READY_MS = 30_000;
const SENDER_REPORT_MS = 10_000;

/** What stream() sends its sender process (bench/net-sender.ts) over the IPC channel. */
export type SenderCommand = { type: 'start'; warmupMs: number; seconds: number } | { type: 'stop' };
/** What the sender process reports, in this order: ready, window, stopped (or failed at any point). */
export type SenderReport =
  | { type: 'ready' }
  | { type: 'window'; txPps: number }
  | { type: 'stopped'; stalledSends: number }
  | { type: 'failed'; message: string };

/** How stream() runs. */
export interface StreamOptions {
  /** Used-buffer notifications by MSI-X, or polling. */
  interrupts: 'poll' | 'msix';
  /** Negotiate VIRTIO_F_EVENT_IDX when offered (default true). */
  eventIdx?: boolean;
  /**
   * 1 (default): both NICs in this process, on one event loop. 2: the sender in a child process
   * (bench/net-sender.ts), so each NIC has an event loop and a vCPU of its own, as the peer's two
   * testpmd processes do. `window` needs 1 (it profiles this process).
   */
  processes?: 1 | 2;
  /** Called once both NICs are open (before the first send) and once the timed window is over (before the drain). */
  window?: { started(): Promise<void>; ended(): Promise<void> };
}

/** One window's figures. */
export interface StreamResult {
  from: Ring;
  to: Ring;
  size: number;
  /** Frames per second the sender's device took (transmit completions). */
  txPps: number;
  /** Frames per second the receiver got. */
  rxPps: number;
  /** Sends still not completed DRAIN_MS after the window (the transmit queue stalled). */
  stalledSends?: number;
  /** How many processes drove the two NICs (StreamOptions.processes). */
  processes: 1 | 2;
}

/** A `size`-byte frame from `src` to `dst` with the benchmark's EtherType (counted by the receiver). */
export function frame(dst: Uint8Array, src: Uint8Array, size: number): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = ETHERTYPE >> 8;
  f[13] = ETHERTYPE & 0xff;
  for (let i = 14; i < size; i++) f[i] = i & 0xff;
  return f;
}

/** WINDOW senders of one frame on one NIC, each sending the next as its last completes. */
export interface Pumps {
  /** Sends completed so far. */
  readonly sent: number;
  /** Starts the senders (once). */
  start(): void;
  /** Rejects when a send failed before stop() (never resolves otherwise). */
  readonly failed: Promise<never>;
  /** Stops the senders; resolves with the sends still not completed after `drainMs` (0 when all drained). */
  stop(drainMs: number): Promise<number>;
  /** Waits, at most `ms`, for every sender to end (after the NIC's close() rejected what was left). */
  settled(ms: number): Promise<void>;
}

/** The transmit side of a window (see Pumps). */
export function pumpSends(tx: NetDriver, f: Uint8Array): Pumps {
  let stop = false;
  let sent = 0;
  let inFlight = 0;
  let all: Promise<unknown> = Promise.resolve();
  let fail: (e: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => { fail = reject; });
  failed.catch(() => undefined); // observed by whoever races it
  const pump = async (): Promise<void> => {
    while (!stop) {
      inFlight++;
      try {
        await tx.send(f);
      } catch (e) {
        if (stop) return; // rejected by close() after a stall
        throw e;
      } finally {
        inFlight--;
      }
      sent++;
    }
  };
  return {
    get sent() { return sent; },
    failed,
    start() {
      all = Promise.all(Array.from({ length: WINDOW }, pump));
      all.then(() => { if (!stop) fail(new Error('the senders ended before the window did')); }, (e: unknown) => fail(e));
    },
    async stop(drainMs) {
      stop = true;
      const drained = await Promise.race([all.then(() => true, () => true), delay(drainMs, false)]);
      return drained ? 0 : inFlight;
    },
    async settled(ms) {
      stop = true;
      await Promise.race([all.catch(() => undefined), delay(ms)]);
    },
  };
}

/**
 * Without VIRTIO_F_EVENT_IDX notifications follow the flags alone (§2.7.10 / §2.8.10). NetDriver has
 * no option for it, so the transport is wrapped to hide the bit from the offered features (a
 * diagnostic for the packed transmit stall, bench/README.md).
 */
function withoutEventIdx(t: VirtioTransport): VirtioTransport {
  return new Proxy(t, {
    get(target, key) {
      if (key === 'deviceFeatures') return () => target.deviceFeatures() & ~(1n << BigInt(Feature.EVENT_IDX));
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export async function openNic(ring: Ring, interrupts: 'poll' | 'msix', eventIdx: boolean): Promise<NetDriver> {
  const dev = await openTransport(`vfio:${NICS[ring]}`);
  const net = await NetDriver.open(eventIdx ? dev.transport : withoutEventIdx(dev.transport), { layout: ring, interrupts, rxBuffers: 256 });
  if (net.device.interruptMode !== interrupts) {
    await net.close();
    throw new Error(`${NICS[ring]} came up in ${net.device.interruptMode} mode, not ${interrupts}`);
  }
  return net;
}

/** Counts the benchmark's frames of `size` bytes as `rx` receives them. */
function countFrames(rx: NetDriver, size: number): { readonly received: number } {
  let received = 0;
  rx.onFrame((r) => {
    const b = r.frame;
    if (b.length === size && b[12] === ETHERTYPE >> 8 && b[13] === (ETHERTYPE & 0xff)) received++;
  });
  return { get received() { return received; } };
}

/** Frames counted per second over `seconds`, after `warmupMs`. */
async function rate(count: () => number, warmupMs: number, seconds: number): Promise<number> {
  await delay(warmupMs);
  const [n0, t0] = [count(), process.hrtime.bigint()];
  await delay(seconds * 1000);
  return (count() - n0) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/**
 * One window on freshly opened NICs: `from` sends `size`-byte frames to `to` with WINDOW in flight;
 * both counted over `seconds` after WARMUP_MS. Sends still in flight DRAIN_MS after the window are
 * reported as stalled (close() resets both devices, which rejects them). Rejects with the errors of
 * NetDriver.open and send(), when the devices do not come up in the `interrupts` mode, and (two
 * processes) when the sender process fails, exits or misses a bound (SENDER_READY_MS, SENDER_REPORT_MS).
 */
export async function stream(from: Ring, to: Ring, size: number, seconds: number, options: StreamOptions): Promise<StreamResult> {
  if (options.processes === 2) {
    if (options.window) throw new Error('stream: a profiling window needs both NICs in this process (processes: 1)');
    return streamToChild(from, to, size, seconds, options);
  }
  const { interrupts, eventIdx = true, window } = options;
  const tx = await openNic(from, interrupts, eventIdx);
  let rx: NetDriver | undefined;
  let pumps: Pumps | undefined;
  try {
    rx = await openNic(to, interrupts, eventIdx);
    const counter = countFrames(rx, size);
    pumps = pumpSends(tx, frame(rx.mac, tx.mac, size));
    await window?.started();
    pumps.start();
    const p = pumps;
    await Promise.race([delay(WARMUP_MS), p.failed]);
    const [tx0, rx0, t0] = [p.sent, counter.received, process.hrtime.bigint()];
    await Promise.race([delay(seconds * 1000), p.failed]);
    const [tx1, rx1, t1] = [p.sent, counter.received, process.hrtime.bigint()];
    const s = Number(t1 - t0) / 1e9;
    await window?.ended();
    const stalled = await p.stop(DRAIN_MS);
    return { from, to, size, txPps: (tx1 - tx0) / s, rxPps: (rx1 - rx0) / s, processes: 1, ...(stalled ? { stalledSends: stalled } : {}) };
  } finally {
    await tx.close();
    await rx?.close();
    await pumps?.settled(DRAIN_MS);
  }
}

/** The sender process's channel: its reports in order, each awaited with a bound. */
function senderChannel(child: ChildProcess): { next(type: SenderReport['type'], ms: number): Promise<SenderReport> } {
  const reports: SenderReport[] = [];
  let ended: string | undefined;
  let wake: (() => void) | undefined;
  child.on('message', (m: SenderReport) => { reports.push(m); wake?.(); });
  child.on('exit', (code, signal) => { ended = `exited (${signal ?? `code ${code}`})`; wake?.(); });
  child.on('error', (e) => { ended = e.message; wake?.(); });
  return {
    async next(type, ms) {
      const until = Date.now() + ms;
      for (;;) {
        const r = reports.shift();
        if (r?.type === 'failed') throw new Error(`the sender process failed: ${r.message}`);
        if (r) {
          if (r.type !== type) throw new Error(`the sender process reported '${r.type}' where '${type}' was due`);
          return r;
        }
        if (ended) throw new Error(`the sender process ${ended} before reporting '${type}'`);
        const left = until - Date.now();
        if (left <= 0) throw new Error(`the sender process did not report '${type}' within ${ms} ms`);
        await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, left).unref(); });
      }
    },
  };
}

/** stream() with the sender in a child process (bench/net-sender.ts) and the receiver here. */
async function streamToChild(from: Ring, to: Ring, size: number, seconds: number,
  { interrupts, eventIdx = true }: StreamOptions): Promise<StreamResult> {
  const rx = await openNic(to, interrupts, eventIdx);
  let child: ChildProcess | undefined;
  try {
    const counter = countFrames(rx, size);
    const mac = [...rx.mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
    child = fork(fileURLToPath(new URL('./net-sender.js', import.meta.url)), [from, String(size), interrupts, eventIdx ? '1' : '0', mac], { stdio: 'inherit' });
    const channel = senderChannel(child);
    await channel.next('ready', SENDER_READY_MS);
    const command = (c: SenderCommand): void => { child?.send(c); };
    command({ type: 'start', warmupMs: WARMUP_MS, seconds });
    const senderWindow = channel.next('window', WARMUP_MS + seconds * 1000 + SENDER_REPORT_MS);
    senderWindow.catch(() => undefined);
    const rxPps = await rate(() => counter.received, WARMUP_MS, seconds);
    const tx = await senderWindow;
    command({ type: 'stop' });
    const stopped = await channel.next('stopped', DRAIN_MS + SENDER_REPORT_MS);
    const stalled = stopped.type === 'stopped' ? stopped.stalledSends : 0;
    return { from, to, size, txPps: tx.type === 'window' ? tx.txPps : 0, rxPps, processes: 2, ...(stalled ? { stalledSends: stalled } : {}) };
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.disconnect?.();
      if (!await Promise.race([exited.then(() => true), delay(DRAIN_MS + SENDER_REPORT_MS, false)])) child.kill('SIGKILL');
    }
    await rx.close();
  }
}

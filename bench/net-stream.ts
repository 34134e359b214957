// The uvirtio side of bench/vm-net.ts (and of bench/vm-net-profile.ts): one timed window in which one
// of the test VM's two virtio-net functions sends frames as fast as NetDriver lets it and the other
// counts what it receives, both over VFIO.

import { setTimeout as delay } from 'node:timers/promises';
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
const DRAIN_MS = 3_000;

/** How stream() runs. */
export interface StreamOptions {
  /** Used-buffer notifications by MSI-X, or polling. */
  interrupts: 'poll' | 'msix';
  /** Negotiate VIRTIO_F_EVENT_IDX when offered (default true). */
  eventIdx?: boolean;
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
}

function frame(dst: Uint8Array, src: Uint8Array, size: number): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = ETHERTYPE >> 8;
  f[13] = ETHERTYPE & 0xff;
  for (let i = 14; i < size; i++) f[i] = i & 0xff;
  return f;
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

async function openNic(ring: Ring, interrupts: 'poll' | 'msix', eventIdx: boolean): Promise<NetDriver> {
  const dev = await openTransport(`vfio:${NICS[ring]}`);
  const net = await NetDriver.open(eventIdx ? dev.transport : withoutEventIdx(dev.transport), { layout: ring, interrupts, rxBuffers: 256 });
  if (net.device.interruptMode !== interrupts) {
    await net.close();
    throw new Error(`${NICS[ring]} came up in ${net.device.interruptMode} mode, not ${interrupts}`);
  }
  return net;
}

/**
 * One window on freshly opened NICs: `from` sends `size`-byte frames to `to` with WINDOW in flight;
 * both counted over `seconds` after WARMUP_MS. Sends still in flight DRAIN_MS after the window are
 * reported as stalled (close() resets both devices, which rejects them). Rejects with the errors of
 * NetDriver.open and send(), and when the devices do not come up in the `interrupts` mode.
 */
export async function stream(from: Ring, to: Ring, size: number, seconds: number,
  { interrupts, eventIdx = true, window }: StreamOptions): Promise<StreamResult> {
  const tx = await openNic(from, interrupts, eventIdx);
  let rx: NetDriver | undefined;
  let stop = false;
  let pumps: Promise<unknown> = Promise.resolve();
  try {
    rx = await openNic(to, interrupts, eventIdx);
    const f = frame(rx.mac, tx.mac, size);
    let received = 0;
    rx.onFrame((r) => {
      const b = r.frame;
      if (b.length === size && b[12] === ETHERTYPE >> 8 && b[13] === (ETHERTYPE & 0xff)) received++;
    });
    let sent = 0;
    let inFlight = 0;
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
    await window?.started();
    pumps = Promise.all(Array.from({ length: WINDOW }, pump));
    const failed = pumps.then(() => { throw new Error('the senders ended before the window did'); });
    const wait = (ms: number): Promise<unknown> => Promise.race([delay(ms), failed]);
    await wait(WARMUP_MS);
    const [tx0, rx0, t0] = [sent, received, process.hrtime.bigint()];
    await wait(seconds * 1000);
    const [tx1, rx1, t1] = [sent, received, process.hrtime.bigint()];
    stop = true;
    await window?.ended();
    const drained = await Promise.race([pumps.then(() => true), delay(DRAIN_MS, false)]);
    const s = Number(t1 - t0) / 1e9;
    return { from, to, size, txPps: (tx1 - tx0) / s, rxPps: (rx1 - rx0) / s, ...(drained ? {} : { stalledSends: inFlight }) };
  } finally {
    stop = true;
    await tx.close();
    await rx?.close();
    await Promise.race([pumps.catch(() => undefined), delay(DRAIN_MS)]);
  }
}

// A BlkDriver on a fresh reference device, as the readDma / readInto tests use it: 4096 sectors,
// maxTransfer 16 KiB (so 64 KiB goes as several requests), depth 8 unless asked, closed at teardown.

import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { openTransport } from '../../lib/open.js';
import type { DeviceSnapshot } from '../../lib/virtio/snapshot/index.js';

export interface BlkSimOptions {
  /** Each request completes this many ms after the notification (default: at once). */
  latencyMs?: number;
  depth?: number;
  /** The device offers VIRTIO_F_RING_STATE (a stop without a reset). */
  ringState?: boolean;
  requestTimeoutMs?: number;
  layout?: Layout;
}

export async function openBlkSim(t: { teardown(fn: () => unknown): void }, opts: BlkSimOptions = {}) {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 4096, state: { ringState: opts.ringState ?? false }, completion: opts.latencyMs ? { latencyMs: opts.latencyMs } : 'immediate' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), {
    maxTransfer: 16 * 1024, depth: opts.depth ?? 8,
    ...(opts.layout ? { layout: opts.layout } : {}), ...(opts.requestTimeoutMs ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
  });
  t.teardown(() => blk.close());
  return { sim, blk };
}

/** `n` bytes that differ with `seed` and along the buffer (so a misplaced block shows). */
export const blkPattern = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 31 + seed * 7) & 0xff);

/** A snapshot of a fresh, stopped sim:blk (its driver closed again): a valid file's contents to change. */
export async function stoppedBlkSnapshot(): Promise<DeviceSnapshot> {
  const blk = await BlkDriver.open((await openTransport('sim:blk')).transport);
  await blk.stop();
  const snap = blk.snapshot();
  await blk.close();
  return snap;
}

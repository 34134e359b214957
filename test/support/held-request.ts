// A raw QueueSet on a reference blk device that completes nothing by itself (completion 'manual'),
// with one request the device holds: the set-up of the tests asking what becomes of a request in
// flight when the device fails, is reset, closed or recovered.

import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import type { VirtioTransport } from '../../lib/transport/types.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet, type QueueSetOptions } from '../../lib/virtio/queue-set.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { BlkReq } from '../../lib/spec/index.js';
import { settledCode } from './codes.js';

/**
 * Opens the device (queue 0 of `size` 16 unless given), submits one request — a 512-byte IN of
 * sector 0 with `read`, else a FLUSH — from a 4 KiB DMA region, and waits (at most 50 turns of the
 * event loop) until the device holds it. `settled` is the request's code ('ok' or its error code,
 * bounded by settledCode's 10 s). `wrap` puts something between the device and its transport (a
 * transport whose flush() the test holds, to act while reinit() or recover() is under way).
 */
export async function heldRequest(t: { teardown(fn: () => unknown): void },
  opts: { layout?: Layout; queue?: QueueSetOptions; read?: boolean; wrap?: (transport: VirtioPciTransport) => VirtioTransport } = {}) {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const transport = new VirtioPciTransport(sim.fn);
  const dev = await VirtioDevice.open(opts.wrap ? opts.wrap(transport) : transport, opts.layout ? { features: { layout: opts.layout } } : {});
  const queues = new QueueSet(dev);
  t.teardown(() => queues.close());
  const rq = queues.add(0, { size: 16, ...opts.queue });
  await dev.driverOk();
  const buffer = dev.dma.alloc(4096);
  new DataView(buffer.bytes.buffer, buffer.bytes.byteOffset).setUint32(0, opts.read ? BlkReq.IN : BlkReq.FLUSH, true);
  const writable = opts.read ? [{ addr: buffer.iova + 16n, len: 512 }, { addr: buffer.iova + 528n, len: 1 }] : [{ addr: buffer.iova + 16n, len: 1 }];
  const settled = settledCode(rq.submit([{ addr: buffer.iova, len: 16 }], writable));
  for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
  return { sim, dev, queues, rq, buffer, settled };
}

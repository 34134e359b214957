// A raw virtio-blk read chain for tests that drive a RequestQueue directly (submitCb / submit)
// rather than through BlkDriver's own requests.

import type { BlkDriver } from '../../drivers/blk/index.js';
import type { Segment } from '../../lib/virtio/queue/types.js';
import { BLK_REQ_HEADER_LEN, BlkReq } from '../../lib/spec/index.js';

/** A 4 KiB read of `sector` as a raw chain in fresh DMA memory: header, data, status byte (0xff until the device writes it). */
export function readChain(blk: BlkDriver, sector: number): { readable: Segment[]; writable: Segment[]; status: () => number } {
  const region = blk.device.dma.alloc(4096 + 64, 64);
  const view = new DataView(region.bytes.buffer, region.bytes.byteOffset, region.size);
  view.setUint32(0, BlkReq.IN, true);
  view.setBigUint64(8, BigInt(sector), true);
  view.setUint8(BLK_REQ_HEADER_LEN, 0xff);
  return {
    readable: [{ addr: region.iova, len: BLK_REQ_HEADER_LEN }],
    writable: [{ addr: region.iova + 64n, len: 4096 }, { addr: region.iova + BigInt(BLK_REQ_HEADER_LEN), len: 1 }],
    status: () => view.getUint8(BLK_REQ_HEADER_LEN),
  };
}

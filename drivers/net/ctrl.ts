// The control virtqueue (virtio 1.2 §5.1.6.5): one command at a time, each a chain of class,
// command and data (device-readable) and the ack byte (device-writable).

import { NetCtrl } from '../../lib/spec/index.js';
import { RequestError } from '../../lib/errors.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';

const ACK_OFFSET = 64;

export class ControlQueue {
  private readonly buf: DmaRegion;
  /** Commands run one after the other: the buffer is shared. */
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly rq: RequestQueue<undefined>, dma: DmaAllocator, private readonly address: string) {
    this.buf = dma.alloc(128, 64);
  }

  /** VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (§5.1.6.5.5): the device uses `pairs` queue pairs once it acks. */
  setQueuePairs(pairs: number): Promise<void> {
    return this.command(NetCtrl.CLASS_MQ, NetCtrl.MQ_VQ_PAIRS_SET, Uint8Array.of(pairs & 0xff, pairs >> 8), `VQ_PAIRS_SET ${pairs}`);
  }

  private command(cls: number, cmd: number, data: Uint8Array, what: string): Promise<void> {
    const run = async (): Promise<void> => {
      const b = this.buf.bytes;
      b[0] = cls;
      b[1] = cmd;
      b.set(data, 2);
      b[ACK_OFFSET] = 0xff; // neither OK nor ERR until the device writes it
      const { len } = await this.rq.submit([{ addr: this.buf.iova, len: 2 + data.length }], [{ addr: this.buf.iova + BigInt(ACK_OFFSET), len: 1 }]);
      // §5.1.6.5: the device writes the ack byte; a used length of 0 says it wrote nothing.
      if (len < 1) {
        throw new RequestError('E_DEVICE_SHORT_USED_LEN', `${this.address}: the device returned ${what} without writing its ack byte (used length 0)`,
          'the command may or may not have taken effect; the device broke virtio 1.2 §2.7.8');
      }
      const ack = b[ACK_OFFSET];
      if (ack === NetCtrl.ACK_ERR) {
        throw new RequestError('E_IO_ERROR', `${this.address}: the device answered VIRTIO_NET_ERR to ${what}`,
          'the device refused the command and kept its previous setting; ask for a value it accepts (setQueuePairs: 1 to queuePairs)');
      }
      if (ack !== NetCtrl.ACK_OK) {
        throw new RequestError('E_DEVICE_BAD_REPLY', `${this.address}: the device answered ack ${ack} to ${what} (neither VIRTIO_NET_OK nor VIRTIO_NET_ERR)`,
          'the device broke virtio 1.2 §5.1.6.5: the command may or may not have taken effect; send it again');
      }
    };
    const next = this.last.then(run, run);
    this.last = next.catch(() => undefined);
    return next;
  }

  release(dma: DmaAllocator): void {
    dma.free(this.buf);
  }
}

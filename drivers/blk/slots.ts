// The driver's request slots: one DMA region each (header, status byte, data), spread over the
// request queues, at most `depth` per queue. A caller without a free slot waits, first come first
// served: that is the driver's bounded queue depth and its back-pressure.

import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import type { UvirtioError } from '../../lib/errors.js';
import type { Segment } from '../../lib/virtio/queue/types.js';

export interface Slot {
  region: DmaRegion;
  view: DataView;
  /** The request queue this slot's requests go to. */
  queue: number;
  /** The 16-byte request header at the start of the region (device-readable; virtio 1.2 §5.2.6). */
  header: Segment;
  /** The status byte after the header (device-writable, the chain's last byte). */
  status: Segment;
  /** The bus address of the slot's data (at `dataOffset`). */
  data: bigint;
}

export class SlotPool {
  private readonly free: Slot[] = [];
  private readonly waiters: { resolve: (s: Slot) => void; reject: (e: Error) => void }[] = [];
  private readonly all: Slot[] = [];
  private closedBy: UvirtioError | null = null;

  /**
   * @param dma where the slots' memory comes from.
   * @param queues the request queues, by index.
   * @param depth slots per queue.
   * @param bytes each slot's size.
   * @param headerLen the request header's length.
   * @param statusOffset where the status byte sits in a slot (after the header).
   * @param dataOffset where the data starts in a slot.
   */
  constructor(dma: DmaAllocator, queues: readonly number[], depth: number, bytes: number, headerLen: number, statusOffset: number, dataOffset: number) {
    // Interleaved (q0, q1, …, q0, q1, …) and taken from the end: consecutive requests go to different queues.
    try {
      for (let i = 0; i < depth; i++) {
        for (const queue of queues) {
          const region = dma.alloc(bytes, 4096);
          const view = new DataView(region.bytes.buffer, region.bytes.byteOffset, region.size);
          this.all.push({ region, view, queue, header: { addr: region.iova, len: headerLen }, status: { addr: region.iova + BigInt(statusOffset), len: 1 }, data: region.iova + BigInt(dataOffset) });
        }
      }
    } catch (e) {
      // An allocation failed (E_DMA_EXHAUSTED): the slots allocated before it are given back, not leaked by the failed open().
      for (const s of this.all.splice(0)) dma.free(s.region);
      throw e;
    }
    this.free.push(...this.all.reverse());
  }

  /**
   * Waits for one slot, then takes up to `max` − 1 more that are free now (a batch kicks once).
   * The wait ends when a request settles (each does, within the device's request timeout) or the
   * pool closes (rejected with the reason).
   */
  async takeSome(max: number): Promise<Slot[]> {
    if (this.closedBy) throw this.closedBy;
    const first = this.free.pop() ?? await new Promise<Slot>((resolve, reject) => this.waiters.push({ resolve, reject }));
    const slots = [first];
    while (slots.length < max && this.free.length > 0) slots.push(this.free.pop()!);
    return slots;
  }

  /** A slot free now without waiting, or undefined (then takeSome() waits, in turn). */
  tryTake(): Slot | undefined {
    return this.closedBy || this.waiters.length > 0 ? undefined : this.free.pop();
  }

  give(s: Slot): void {
    const next = this.waiters.shift();
    if (next) next.resolve(s);
    else this.free.push(s);
  }

  /** Rejects everyone waiting for a slot, and every later take, with `reason`. */
  close(reason: UvirtioError): void {
    this.closedBy ??= reason;
    for (const w of this.waiters.splice(0)) w.reject(reason);
  }

  /** Frees the slots' memory (once the device that could write into them was reset). */
  release(dma: DmaAllocator): void {
    for (const s of this.all) dma.free(s.region);
  }
}

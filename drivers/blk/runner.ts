// Carrying out planned blk requests (virtio 1.2 §5.2.6). A request is three pieces of DMA memory in
// one slot (slots.ts): the 16-byte header (device-readable), the data (readable for OUT, writable
// for IN, split at size_max), and the status byte (device-writable, last). Slots taken together
// are submitted together, one kick per queue; the status byte becomes a result or a typed error.

import { BLK_REQ_HEADER_LEN, BlkReq, BlkStatus } from '../../lib/spec/index.js';
import { RequestError, UsageError } from '../../lib/errors.js';
import type { RequestQueue, RequestSpec } from '../../lib/virtio/request-queue.js';
import type { BlkLimits } from './limits.js';
import { copyBytes } from '../../lib/util/copy-bytes.js';
import { dataSegments } from './plan.js';
import type { Slot, SlotPool } from './slots.js';

/** One device request, planned: what goes out, how many bytes come back. */
export interface Planned {
  type: number;
  sector: number;
  out: Uint8Array | undefined;
  inBytes: number;
  /** Where the device writes the data instead of the slot (BlkDriver.readDma): the caller's DMA memory. */
  into: { iova: bigint; bytes: Uint8Array } | undefined;
  /** Where the data is copied from the slot instead of into a new buffer (BlkDriver.readInto): exactly inBytes long. */
  copyTo: Uint8Array | undefined;
}

/** Where a slot's status byte sits (right after the 16-byte header). */
export const STATUS_OFFSET = BLK_REQ_HEADER_LEN;
/** Where a slot's data starts (after the header and the status byte, cache-line aligned). */
export const DATA_OFFSET = 64;

/** E_INVALID_ARGUMENT for a request whose caller memory (a write's data, a readInto target) was transferred or shrunk under it. */
function memoryGone(p: Planned, which: 'data' | 'target'): UsageError {
  return new UsageError('E_INVALID_ARGUMENT', `request type ${p.type} at sector ${p.sector}: the ${which}'s memory was detached or shrunk while the request waited or was in flight`,
    `keep the ${which}'s ArrayBuffer (do not transfer or resize it) until the call settles`);
}

export class RequestRunner {
  /** Set by the driver's close(): later requests are refused. */
  closed = false;
  /** readDma requests waiting for a slot: the free() guard's view of their targets (waitingTargetUse). */
  private readonly waitingForSlot = new Set<Planned>();

  constructor(
    private readonly rqs: readonly RequestQueue<undefined>[],
    private readonly pool: SlotPool,
    private readonly limits: BlkLimits,
    private readonly device: { readonly address: string },
  ) {}

  /**
   * Runs requests over the queues as slots allow: each group of slots taken together is submitted
   * with one kick per queue. Resolves with each request's returned data, in order; if any failed,
   * rejects with the first failure (in order) once all have finished.
   */
  async run(planned: readonly Planned[]): Promise<(Uint8Array | undefined)[]> {
    this.checkOpen();
    const done: Promise<Uint8Array | undefined>[] = [];
    // A readDma waiting for a slot holds its target as much as one on the ring (free() refused).
    for (const p of planned) if (p.into) this.waitingForSlot.add(p);
    try {
      for (let next = 0; next < planned.length;) {
        const from = next;
        next = this.startGroup(planned, next, await this.pool.takeSome(planned.length - next), done);
        // Started: their RequestQueue (waiting list, ring) holds them now.
        for (let i = from; i < next; i++) this.waitingForSlot.delete(planned[i]!);
      }
    } catch (e) {
      for (const p of planned) this.waitingForSlot.delete(p);
      // The rest never started (a close() while they waited for slots, data detached meanwhile):
      // the requests already on the device are still waited for, and this call rejects with why
      // the rest did not start.
      await Promise.allSettled(done.filter(Boolean));
      throw e;
    }
    const settled = await Promise.allSettled(done);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<Uint8Array | undefined>).value);
  }

  /**
   * Starts planned[next …] on `slots` (one kick per queue), their completions in `done` at their
   * indexes; returns the next index to start. Every slot is filled before any is submitted: when
   * one cannot be (the caller's data detached meanwhile) all the slots go back, none on the device.
   */
  private startGroup(planned: readonly Planned[], next: number, slots: Slot[], done: Promise<Uint8Array | undefined>[]): number {
    const byQueue = new Map<number, { slot: Slot; index: number; chain: RequestSpec<undefined> }[]>();
    try {
      for (const slot of slots) {
        const index = next++;
        const list = byQueue.get(slot.queue) ?? [];
        list.push({ slot, index, chain: this.fill(slot, planned[index]!) });
        byQueue.set(slot.queue, list);
      }
    } catch (e) {
      for (const slot of slots) this.pool.give(slot);
      throw e;
    }
    for (const [q, items] of byQueue) {
      const completions = this.rqs[q]!.submitMany(items.map((i) => i.chain));
      items.forEach(({ slot, index }, k) => {
        const d = this.finish(slot, planned[index]!, completions[k]!);
        // Heard at once: one that fails while the call still waits for slots for the rest would
        // otherwise be an unhandled rejection, which ends the process (run() reports it, in order).
        d.catch(() => undefined);
        done[index] = d;
      });
    }
    return next;
  }

  /**
   * The free() guard's check for readDma targets of requests waiting for a slot: what of
   * [iova, iova+size) one uses, or undefined (DmaAllocator.guardFree's InUseCheck).
   */
  waitingTargetUse(iova: bigint, size: number): string | undefined {
    if (this.waitingForSlot.size === 0) return undefined;
    const end = iova + BigInt(size);
    for (const p of this.waitingForSlot) {
      const at = p.into!.iova;
      if (at < end && iova < at + BigInt(p.inBytes)) return `${this.device.address}: a readDma of sector ${p.sector} waiting for a request slot reads into 0x${at.toString(16)}+${p.inBytes} of it`;
    }
    return undefined;
  }

  /** Throws UsageError E_CLOSED once the driver's close() has begun. */
  checkOpen(): void {
    if (this.closed) throw new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`);
  }

  /**
   * One request on a slot that is free now, settled through its queue's completion callback
   * (RequestQueue.submitCb): one promise, none of run()'s batching. Null when no slot is free now
   * (run() then waits for one, in turn). Settles like run() does for one request. The
   * notification goes from a microtask, one for every request started in the same run of code
   * (submitCb's kickNow false): readers that resubmit from their completions share one (measured
   * in bench/README.md, bench:vm QD32).
   */
  runOne(p: Planned): Promise<Uint8Array | undefined> | null {
    if (this.closed) return Promise.reject(new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`));
    const slot = this.pool.tryTake();
    if (!slot) return null;
    let chain: RequestSpec<undefined>;
    try {
      chain = this.fill(slot, p);
    } catch (e) {
      this.pool.give(slot);
      return Promise.reject(e);
    }
    const { readable, writable } = chain;
    return new Promise((resolve, reject) => {
      this.rqs[slot.queue]!.submitCb(readable, writable, undefined, (error, len) => {
        try {
          if (error) reject(error);
          else resolve(this.reply(slot, p, len));
        } catch (e) {
          reject(e);
        } finally {
          this.pool.give(slot);
        }
      }, false);
    });
  }

  /** Writes the header (and outgoing data) into the slot; returns the chain (virtio 1.2 §5.2.6). */
  private fill(slot: Slot, p: Planned): RequestSpec<undefined> {
    // The caller's data is copied only now (the request may have waited for a slot): a buffer
    // transferred or shrunk meanwhile has no bytes left (a write's data is never empty).
    if (p.out && p.out.length === 0) throw memoryGone(p, 'data');
    slot.view.setUint32(0, p.type, true);
    slot.view.setUint32(4, 0, true);
    slot.view.setBigUint64(8, BigInt(p.sector), true);
    slot.view.setUint8(STATUS_OFFSET, 0xff); // not a status the device can leave by accident
    const data = p.into ? p.into.iova : slot.data;
    if (p.out) slot.region.bytes.set(p.out, DATA_OFFSET);
    // Range segments are not block data: they go as one piece (their size is far below size_max).
    const sizeMax = p.type === BlkReq.IN || p.type === BlkReq.OUT ? this.limits.sizeMax : Number.MAX_SAFE_INTEGER;
    const { header, status } = slot;
    if (p.inBytes > 0 && p.inBytes <= sizeMax) return { readable: [header], writable: [{ addr: data, len: p.inBytes }, status] };
    return {
      readable: [header, ...(p.out ? dataSegments(data, p.out.length, sizeMax) : [])],
      writable: [...(p.inBytes > 0 ? dataSegments(data, p.inBytes, sizeMax) : []), status],
    };
  }

  /**
   * Waits for the request, checks what the device wrote, maps its status to a result or a typed
   * error, and frees the slot.
   *
   * virtio 1.2 §5.2.6: the device writes the data, then the status byte, the last writable byte;
   * §2.7.8.1: the driver must not rely on bytes beyond the used length. So a reply counts only
   * when the used length covers the data and the status byte; anything shorter is the device's
   * fault (E_DEVICE_SHORT_USED_LEN), never a success with stale bytes from the reused slot.
   */
  private async finish(slot: Slot, p: Planned, completion: Promise<{ len: number }>): Promise<Uint8Array | undefined> {
    try {
      return this.reply(slot, p, (await completion).len);
    } finally {
      this.pool.give(slot);
    }
  }

  /** What the device wrote for `p` into `slot`, `len` bytes by its used element: the data, or a typed error (see finish). */
  private reply(slot: Slot, p: Planned, len: number): Uint8Array | undefined {
    const needed = p.inBytes + 1;
    if (len < needed) {
      throw new RequestError('E_DEVICE_SHORT_USED_LEN',
        `${this.device.address}: request type ${p.type} at sector ${p.sector}: the device reported ${len} byte(s) written, the reply takes ${needed} (${p.inBytes} of data and the status byte)`,
        'the device did not write the whole reply, so neither its data nor its status can be trusted; retry the request, and check the device (it breaks virtio 1.2 §2.7.8)');
    }
    const code = slot.view.getUint8(STATUS_OFFSET);
    if (code === BlkStatus.OK) {
      if (p.inBytes === 0) return undefined;
      if (p.into) return p.into.bytes;
      if (p.copyTo) {
        // A target whose buffer was transferred or shrunk meanwhile has no room left (length 0).
        if (p.copyTo.length !== p.inBytes) throw memoryGone(p, 'target');
        p.copyTo.set(slot.region.bytes.subarray(DATA_OFFSET, DATA_OFFSET + p.inBytes));
        return p.copyTo;
      }
      return copyBytes(slot.region.bytes, DATA_OFFSET, DATA_OFFSET + p.inBytes);
    }
    if (code === BlkStatus.UNSUPP) {
      throw new RequestError('E_UNSUPPORTED', `${this.device.address} does not support request type ${p.type} (VIRTIO_BLK_S_UNSUPP)`,
        'the device refused this kind of request: do not send it to this device (`uvirtio info` lists the features it offers)');
    }
    if (code === BlkStatus.IOERR) {
      throw new RequestError('E_IO_ERROR', `${this.device.address}: request type ${p.type} at sector ${p.sector} failed (VIRTIO_BLK_S_IOERR)`,
        'the device reported an I/O error');
    }
    throw new RequestError('E_DEVICE_BAD_REPLY', `${this.device.address}: request type ${p.type} at sector ${p.sector}: status byte ${code} is none of OK (0), IOERR (1), UNSUPP (2)`,
      'the device broke virtio 1.2 §5.2.6; the request may or may not have been carried out');
  }
}

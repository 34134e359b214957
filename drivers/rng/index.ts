// virtio-rng driver (virtio 1.2 §5.4) on VirtioDevice — the smallest whole driver, and the model
// for a new one (README "Write your own driver"). The device has one request queue (§5.4.2) and no
// device features (§5.4.3) or configuration (§5.4.4); the driver offers device-writable buffers
// and the device fills them with entropy (§5.4.6). Its reference-device model is
// lib/sim/models/rng.ts (sim:rng).

import { DeviceType } from '../../lib/spec/index.js';
import { DeviceError, RequestError, UsageError } from '../../lib/errors.js';
import { VirtioDevice, type OpenOptions } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import { shown } from '../../lib/util/shown.js';
import { optionsObject } from '../../lib/util/options.js';

/** The transport a driver opens on (openTransport(address).transport). */
type Transport = Parameters<typeof VirtioDevice.open>[0];

/** RngDriver.open's options: how interrupts are delivered (VirtioDevice.open's `interrupts`). */
export type RngOpenOptions = Pick<OpenOptions, 'interrupts'>;

/** Bytes asked of the device per request at most: one page, the buffer the driver offers. */
const BUFFER_BYTES = 4096;
/** Bytes one read() returns at most (16 MiB): the result is allocated up front, so the count is bounded. */
export const RNG_MAX_READ_BYTES = 16 * 1024 * 1024;

/** A virtio-rng device, read as a source of random bytes. */
export class RngDriver {
  private constructor(
    private readonly device: VirtioDevice,
    private readonly queues: QueueSet,
    private readonly rq: RequestQueue<undefined>,
    private readonly buf: DmaRegion,
    private readonly dma: DmaAllocator,
  ) {}

  /**
   * Negotiates (no device features: §5.4.3), sets up requestq (queue 0, at most 64 entries) and
   * goes live (§3.1.1). Throws E_NOT_VIRTIO for a device that is not virtio-rng (device id 4), and
   * VirtioDevice.open's errors (E_FEATURES_NOT_OK, …).
   */
  static async open(transport: Transport, options: RngOpenOptions = {}): Promise<RngDriver> {
    options = optionsObject(options, 'RngDriver.open options');
    if (transport.deviceType !== DeviceType.RNG) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not rng (${DeviceType.RNG})`,
        'open it with the driver for its type (BlkDriver, NetDriver, …), or give the address of a virtio-rng device');
    }
    const device = await VirtioDevice.open(transport, { ...options, stateFeatures: false });
    try {
      const queues = new QueueSet(device);
      const rq = queues.add<undefined>(0, { size: Math.min(transport.queueMaxSize(0), 64) });
      await device.driverOk();
      // device.dma: the allocator that stays valid across a reinit onto another device.
      return new RngDriver(device, queues, rq, device.dma.alloc(BUFFER_BYTES, 64), device.dma);
    } catch (e) {
      await device.close();
      throw e;
    }
  }

  /**
   * `n` bytes of entropy (n a positive integer). The device may fill less than offered (its used
   * length, §5.4.6.1), so this asks until it has `n`, one request of at most 4096 bytes at a time.
   * Throws E_INVALID_ARGUMENT for a bad `n`, E_IO_ERROR when the device returns an empty buffer,
   * and the request's errors (E_CLOSED after close, E_DEVICE_NEEDS_RESET, …).
   */
  async read(n: number): Promise<Uint8Array> {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > RNG_MAX_READ_BYTES) {
      throw new UsageError('E_INVALID_ARGUMENT', `read needs a byte count from 1 to ${RNG_MAX_READ_BYTES}, got ${shown(n)}`,
        `ask for more than ${RNG_MAX_READ_BYTES} bytes in several reads`);
    }
    const out = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const want = Math.min(n - got, this.buf.size);
      const { len } = await this.rq.submit([], [{ addr: this.buf.iova, len: want }]);
      // The used length comes from the device: RequestQueue has checked it is within what was offered.
      if (len === 0) throw new RequestError('E_IO_ERROR', `${this.device.address} returned an empty buffer`, 'the device has no entropy to give');
      out.set(this.buf.bytes.subarray(0, len), got);
      got += len;
    }
    return out;
  }

  /** Resets the device (a pending read is rejected with E_CLOSED), then frees the buffer nothing can write into any more. */
  async close(): Promise<void> {
    await this.queues.close();
    // Once: a second close() must not free the buffer again (free() refuses a double free).
    if (this.freed) return;
    this.freed = true;
    this.dma.free(this.buf);
  }
  /** close() has freed the buffer. */
  private freed = false;
}

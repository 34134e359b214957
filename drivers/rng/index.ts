// virtio-rng driver (virtio 1.2 §5.4) on VirtioDevice — the smallest whole driver, and the model
// for a new one (README "Write your own driver"). The device has one request queue (§5.4.2) and no
// device features (§5.4.3) or configuration (§5.4.4); the driver offers device-writable buffers
// and the device fills them with entropy (§5.4.6). Its reference-device model is
// lib/sim/models/rng.ts (sim:rng).
//
// Each request in flight has a buffer of its own (a TxPool of at most the queue's size): reads made
// at once never share memory the device writes into, so no two callers get the same bytes.

import { DeviceType } from '../../lib/spec/index.js';
import { DeviceError, RequestError, UsageError, type UvirtioError } from '../../lib/errors.js';
import { OPEN_OPTION_KEYS, VirtioDevice, type OpenOptions, checkTransportArgument } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import { StatefulDriver } from '../stateful.js';
import { TxPool } from '../dma-buffers.js';
import { shown } from '../../lib/util/shown.js';
import { optionsObject, type OptionKeys } from '../../lib/util/options.js';

/** The transport a driver opens on (openTransport(address).transport). */
type Transport = Parameters<typeof VirtioDevice.open>[0];

/**
 * RngDriver.open's options: VirtioDevice.open's (see {@link OpenOptions}) — `interrupts` ('auto',
 * 'msix', 'poll'), `requestTimeoutMs` (ms requests in flight may see no progress before the device
 * is declared unresponsive and reset, E_DEVICE_UNRESPONSIVE; default 30 000, 1 to 3 600 000),
 * `resetTimeoutMs`, the polling knobs (`hybridPollUs`, `pollSpinUs`, `pollBudget`) and `features`
 * (virtio-rng has no feature bits of its own: only the ring policy, such as `layout`, matters).
 * The stop/state features are never accepted: stop() uses quiesce.
 */
export type RngOpenOptions = Omit<OpenOptions, 'stateFeatures'>;
/** RngOpenOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const RNG_OPEN_OPTION_KEYS: OptionKeys<RngOpenOptions> = (({ stateFeatures: _, ...rest }) => rest)(OPEN_OPTION_KEYS);

/** Bytes asked of the device per request at most: one page, the buffer the driver offers. */
const BUFFER_BYTES = 4096;
/** Bytes one read() returns at most (16 MiB): the result is allocated up front, so the count is bounded. */
export const RNG_MAX_READ_BYTES = 16 * 1024 * 1024;

/**
 * A virtio-rng device, read as a source of random bytes. Reads may be made at once: each request
 * has its own buffer, so every byte the device hands out goes to exactly one caller. Being a
 * {@link StatefulDriver}, it also has stop / snapshot / reinit / resume, recover() after a device
 * failure, and close(reason).
 */
export class RngDriver extends StatefulDriver {
  /** A buffer per request in flight, at most one per ring entry. */
  private readonly buffers: TxPool;
  private closed = false;

  private constructor(
    device: VirtioDevice,
    queues: QueueSet,
    private readonly rq: RequestQueue<undefined>,
    /** device.dma: the allocator that stays valid across a reinit onto another device. */
    dma: DmaAllocator,
  ) {
    super(device, queues);
    this.buffers = new TxPool(dma, BUFFER_BYTES, rq.vq.size);
  }

  /**
   * Negotiates (no device features: §5.4.3), sets up requestq (queue 0, at most 64 entries) and
   * goes live (§3.1.1). Throws E_NOT_VIRTIO for a device that is not virtio-rng (device id 4),
   * E_INVALID_ARGUMENT for bad options, and VirtioDevice.open's errors (E_FEATURES_NOT_OK, …).
   */
  static async open(transport: Transport, options: RngOpenOptions = {}): Promise<RngDriver> {
    checkTransportArgument(transport, 'RngDriver.open');
    options = optionsObject(options, 'RngDriver.open options', RNG_OPEN_OPTION_KEYS);
    if (transport.deviceType !== DeviceType.RNG) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not rng (${DeviceType.RNG})`,
        'open it with the driver for its type (BlkDriver, NetDriver, …), or give the address of a virtio-rng device');
    }
    const device = await VirtioDevice.open(transport, { ...options, stateFeatures: false });
    try {
      const queues = new QueueSet(device);
      const rq = queues.add<undefined>(0, { size: Math.min(transport.queueMaxSize(0), 64) });
      await device.driverOk();
      return new RngDriver(device, queues, rq, device.dma);
    } catch (e) {
      // Reset and released, the caller's transport left open and unowned (as VirtioDevice.open's
      // own refusals leave it): a corrected open on it works.
      await device.close({ keepTransport: true });
      throw e;
    }
  }

  /**
   * `n` bytes of entropy (n a positive integer, at most RNG_MAX_READ_BYTES). The device may fill
   * less than offered (its used length, §5.4.6.1), so this asks until it has `n`, one request of at
   * most 4096 bytes at a time, each in a buffer of its own: reads made at once get different bytes
   * (each waits for a buffer while every ring entry has a request). Throws E_INVALID_ARGUMENT for a
   * bad `n`, E_IO_ERROR when the device returns an empty buffer, E_CLOSED after close(), and the
   * request's errors (E_DEVICE_NEEDS_RESET, a ring fault, E_DEVICE_UNRESPONSIVE …: recover(), then
   * read again).
   */
  async read(n: number): Promise<Uint8Array> {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > RNG_MAX_READ_BYTES) {
      throw new UsageError('E_INVALID_ARGUMENT', `read needs a byte count from 1 to ${RNG_MAX_READ_BYTES}, got ${shown(n)}`,
        `ask for more than ${RNG_MAX_READ_BYTES} bytes in several reads`);
    }
    const out = new Uint8Array(n);
    for (let got = 0; got < n;) {
      const buf = await this.buffer();
      let len: number;
      try {
        const want = Math.min(n - got, buf.size);
        // A fresh segment array per request: the queue may read it again after a reinit.
        ({ len } = await this.rq.submit([], [{ addr: buf.iova, len: want }]));
        // The used length comes from the device: RequestQueue has checked it is within what was offered.
        if (len === 0) throw new RequestError('E_IO_ERROR', `${this.device.address} returned an empty buffer`, 'the device has no entropy to give now; read again later');
        out.set(buf.bytes.subarray(0, len), got);
      } finally {
        // Settled: returned by the device, or rejected once the device that could write into it was reset.
        this.buffers.give(buf);
      }
      got += len;
    }
    return out;
  }

  /** A buffer of the pool, or the next one a settled request gives back; E_CLOSED once close() began. */
  private async buffer(): Promise<DmaRegion> {
    for (;;) {
      if (this.closed) throw new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`);
      const b = this.buffers.take();
      if (b) return b;
      // Every ring entry has a request: each settles (the watchdog bounds it) and gives its buffer back.
      await this.buffers.wait();
    }
  }

  /** Resets the device (a pending read is rejected with E_CLOSED, or `reason`), then frees the buffers nothing can write into any more. */
  protected async shutDown(reason?: UvirtioError): Promise<void> {
    this.closed = true;
    this.buffers.wake(); // reads waiting for a buffer see the close
    await this.queues.close(reason);
    this.buffers.release();
  }
}

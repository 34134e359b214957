// A virtio-rng driver (virtio 1.2 §5.4) written only against uvirtio's public API, to show the
// SDK serves device types it has no driver for. The whole device: one request queue (§5.4.2) to
// which the driver offers device-writable buffers; the device fills them with entropy (§5.4.6).
//
//   node dist/examples/rng-driver.js [ADDRESS] [BYTES]     default sim:rng, 64 bytes
//   node dist/examples/rng-driver.js vfio:0000:00:05.0     QEMU's virtio-rng-pci, bound to vfio-pci

import { pathToFileURL } from 'node:url';
import {
  DeviceError, DeviceType, QueueSet, RequestError, UsageError, VirtioDevice, isUvirtioError, openTransport,
  type DmaAllocator, type DmaRegion, type OpenOptions, type RequestQueue, type VirtioTransport,
} from '../index.js';

export class RngDriver {
  private constructor(
    private readonly device: VirtioDevice,
    private readonly queues: QueueSet,
    private readonly rq: RequestQueue<undefined>,
    private readonly buf: DmaRegion,
    private readonly dma: DmaAllocator,
  ) {}

  /** Negotiates (no device features: §5.4.3), sets up requestq (queue 0), and goes live. */
  static async open(transport: VirtioTransport, options: Pick<OpenOptions, 'interrupts'> = {}): Promise<RngDriver> {
    if (transport.deviceType !== DeviceType.RNG) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not rng (4)`);
    }
    const device = await VirtioDevice.open(transport, { ...options, stateFeatures: false });
    try {
      const queues = new QueueSet(device);
      const rq = queues.add<undefined>(0, { size: Math.min(transport.queueMaxSize(0), 64) });
      await device.driverOk();
      return new RngDriver(device, queues, rq, transport.dma.alloc(4096, 64), transport.dma);
    } catch (e) {
      await device.close();
      throw e;
    }
  }

  /** `n` bytes of entropy. The device may fill less than offered (used len), so ask until done. */
  async read(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 1) throw new UsageError('E_INVALID_ARGUMENT', `read needs a positive byte count, got ${n}`);
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

  /** Resets the device (a pending read is rejected), then frees the buffer nothing can write into any more. */
  async close(): Promise<void> {
    await this.queues.close();
    this.dma.free(this.buf);
  }
}

async function main(): Promise<void> {
  const address = process.argv[2] ?? 'sim:rng';
  const bytes = Number(process.argv[3] ?? 64);
  const opened = await openTransport(address);
  const rng = await RngDriver.open(opened.transport);
  try {
    const data = await rng.read(bytes);
    const distinct = new Set(data).size;
    console.log(JSON.stringify({ ok: true, device: address, bytes: data.length, distinct, hex: Buffer.from(data.subarray(0, 32)).toString('hex') }));
  } finally {
    await rng.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    console.error(isUvirtioError(e) ? `rng-driver: ${e.toLine()}` : e);
    process.exit(1);
  });
}

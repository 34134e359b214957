// virtio-net driver (virtio 1.2 §5.1) on VirtioDevice: one queue pair, frames with the 12-byte
// virtio_net_hdr, receive buffers kept posted (refilled as frames arrive), MAC and link status
// from the device configuration, and stop/reinit in which posted receive buffers survive.

import { DeviceType, NET_HDR_LEN, NetConfig, NetFeature, NetStatus } from '../../lib/virtio/constants.js';
import { DeviceError, RequestError, UsageError } from '../../lib/virtio/errors.js';
import { VirtioDevice, type OpenOptions } from '../../lib/virtio/device.js';
import { StatefulDriver } from '../stateful.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { RequestQueue } from '../../lib/virtio/requests.js';
import type { DmaRegion } from '../../lib/mem/dma.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import type { VirtioTransport } from '../../lib/transport/types.js';

export interface NetOpenOptions extends Omit<OpenOptions, 'features'> {
  layout?: Layout | 'auto';
  queueSize?: number;
  /** Receive buffers kept posted (default 64). */
  rxBuffers?: number;
  /** Largest frame without the header (default 1514: Ethernet without FCS). */
  mtu?: number;
}

export interface ReceivedFrame {
  /** The virtio_net_hdr the device wrote. */
  header: Uint8Array;
  frame: Uint8Array;
}

const RX_QUEUE = 0;
const TX_QUEUE = 1;

export class NetDriver extends StatefulDriver {
  readonly mac: Uint8Array;
  readonly maxFrame: number;
  private readonly rx: RequestQueue<DmaRegion>;
  private readonly tx: RequestQueue<DmaRegion>;
  private readonly txFree: DmaRegion[] = [];
  private readonly frameListeners = new Set<(f: ReceivedFrame) => void>();
  private closed = false;

  private constructor(device: VirtioDevice, queues: QueueSet, maxFrame: number) {
    super(device, queues);
    this.rx = queues.get(RX_QUEUE) as RequestQueue<DmaRegion>;
    this.tx = queues.get(TX_QUEUE) as RequestQueue<DmaRegion>;
    this.maxFrame = maxFrame;
    this.mac = device.has(NetFeature.MAC) ? device.transport.readConfigBytes(NetConfig.MAC, 6) : new Uint8Array(6);
  }

  static async open(transport: VirtioTransport, options: NetOpenOptions = {}): Promise<NetDriver> {
    if (transport.deviceType !== DeviceType.NET) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not net (1)`);
    }
    const maxFrame = options.mtu ?? 1514;
    const rxBuffers = options.rxBuffers ?? 64;
    if (!Number.isInteger(rxBuffers) || rxBuffers < 1) throw new UsageError('E_INVALID_ARGUMENT', `rxBuffers must be a positive integer, got ${rxBuffers}`);
    const device = await VirtioDevice.open(transport, {
      ...options,
      features: { optional: [NetFeature.MAC, NetFeature.STATUS], layout: options.layout ?? 'auto' },
    });
    try {
      const queues = new QueueSet(device);
      const size = options.queueSize ?? Math.min(transport.queueMaxSize(RX_QUEUE), 256);
      queues.add(RX_QUEUE, { size, drains: false });
      queues.add(TX_QUEUE, { size: options.queueSize ?? Math.min(transport.queueMaxSize(TX_QUEUE), 256) });
      device.driverOk();
      const net = new NetDriver(device, queues, maxFrame);
      for (let i = 0; i < Math.min(rxBuffers, size); i++) net.postReceiveBuffer(transport.dma.alloc(NET_HDR_LEN + maxFrame, 64));
      return net;
    } catch (e) {
      await device.close();
      throw e;
    }
  }

  /** Link status from the configuration (up when the device has no STATUS feature). */
  get linkUp(): boolean {
    if (!this.device.has(NetFeature.STATUS)) return true;
    return (this.device.transport.readConfig16(NetConfig.STATUS) & NetStatus.LINK_UP) !== 0;
  }

  /** Calls `listener` for each frame received, in order. Returns a function that unsubscribes. */
  onFrame(listener: (f: ReceivedFrame) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  /** Sends one frame (without header; a zeroed virtio_net_hdr is prepended: no offloads). */
  async send(frame: Uint8Array): Promise<void> {
    if (this.closed) throw new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`);
    if (frame.length === 0 || frame.length > this.maxFrame) {
      throw new RequestError('E_FRAME_TOO_LARGE', `a frame of ${frame.length} bytes does not fit (1 to ${this.maxFrame})`,
        'split the payload, or open the driver with a larger mtu');
    }
    const buf = this.txFree.pop() ?? this.device.transport.dma.alloc(NET_HDR_LEN + this.maxFrame, 64);
    try {
      buf.bytes.fill(0, 0, NET_HDR_LEN);
      buf.bytes.set(frame, NET_HDR_LEN);
      await this.tx.submit([{ addr: buf.iova, len: NET_HDR_LEN + frame.length }], [], buf);
    } finally {
      this.txFree.push(buf);
    }
  }

  /** Posts `buf` for a frame; when one arrives, listeners get it and the buffer is posted again. */
  private postReceiveBuffer(buf: DmaRegion): void {
    this.rx.submit([], [{ addr: buf.iova, len: buf.size }], buf).then(({ len }) => {
      if (this.closed) return;
      const got = Math.min(len, buf.size);
      if (got > NET_HDR_LEN) {
        const f: ReceivedFrame = { header: buf.bytes.slice(0, NET_HDR_LEN), frame: buf.bytes.slice(NET_HDR_LEN, got) };
        for (const l of this.frameListeners) l(f);
      }
      this.postReceiveBuffer(buf);
    }, () => undefined); // a broken or closed queue: the error surfaces on send() and through device health
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queues.close();
    await this.device.close();
  }
}

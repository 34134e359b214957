// virtio-net driver (virtio 1.2 §5.1) on VirtioDevice: frames with the 12-byte virtio_net_hdr
// (offload metadata on send, what the device wrote on receive), receive buffers kept posted and
// refilled, MRG_RXBUF frames put back together from several buffers, several queue pairs through
// the control queue (CTRL_VQ + MQ: VQ_PAIRS_SET), MAC and link status from the configuration, and
// stop/reinit in which posted receive buffers survive (QueueSet drains: false, then repost).

import { DeviceType, NET_HDR_LEN, NetConfig, NetFeature, NetStatus } from '../../lib/spec/index.js';
import { DeviceError, RequestError, UsageError, type UvirtioError } from '../../lib/errors.js';
import { DRIVER_OPEN_OPTION_KEYS, VirtioDevice, checkDriverOpenOptions, type OpenOptions, type ReinitOptions, type VirtioTransport, checkTransportArgument } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { RequestQueue } from '../../lib/virtio/request-queue.js';
import type { DeviceSnapshot } from '../../lib/virtio/snapshot/index.js';
import type { DmaAllocator, DmaRegion } from '../../lib/mem/dma.js';
import type { Layout } from '../../lib/virtio/queue/types.js';
import { StatefulDriver } from '../stateful.js';
import { ControlQueue } from './ctrl.js';
import { checkNetHeader, writeNetHeader, type NetHeader } from './header.js';
import { RxQueue, type ReceivedFrame } from './rx.js';
import { Listeners } from '../../lib/util/listeners.js';
import { shown } from '../../lib/util/shown.js';
import { plainBytes } from '../../lib/util/plain-bytes.js';
import { checkValue, int, type OptionKeys } from '../../lib/util/options.js';
import { TxPool } from '../dma-buffers.js';

export type { ReceivedFrame } from './rx.js';
export { decodeNetHeader, encodeNetHeader, type NetHeader } from './header.js';

/**
 * How {@link NetDriver.open} sets up a virtio-net device: the device-level options of OpenOptions
 * (the driver picks the feature bits itself), ring layout and sizes, receive buffering and queue pairs.
 */
export interface NetOpenOptions extends Omit<OpenOptions, 'features'> {
  /** Ring layout: 'packed' requires VIRTIO_F_RING_PACKED, 'split' refuses it, 'auto' (default) takes packed when offered. */
  layout?: Layout | 'auto';
  /** Ring size of every receive and transmit queue (default: the device's maximum, at most 256; the control queue at most 64). */
  queueSize?: number;
  /** Receive buffers kept posted per pair, 1 to 32768 (default 64; at most the ring size are posted). */
  rxBuffers?: number;
  /** Largest frame without the header, 1 to 65535 bytes (default 1514: Ethernet without FCS). */
  mtu?: number;
  /**
   * Queue pairs to use (default: all the device offers with MQ; 1 declines the control queue). Never
   * more than the device and its transport have: without a control queue the transport has (vhost-user
   * never has one) the driver runs one pair.
   */
  queuePairs?: number;
  /** Accept MRG_RXBUF when offered (default true). */
  mergeable?: boolean;
  /** With MRG_RXBUF: bytes per receive buffer, header included, up to 12 + 65535 (default: header + mtu). */
  rxBufferSize?: number;
}
/** NetOpenOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const NET_OPEN_OPTION_KEYS: OptionKeys<NetOpenOptions> = {
  ...DRIVER_OPEN_OPTION_KEYS, layout: true, queueSize: true, rxBuffers: true, mtu: true, queuePairs: true, mergeable: true, rxBufferSize: true,
};

/** The largest `mtu` NetDriver takes: virtio-net's mtu field is 16 bits (virtio 1.2 §5.1.4) and there is no GSO here. */
const NET_MAX_FRAME = 65535;

/**
 * Refuses (UsageError E_INVALID_ARGUMENT) receive buffers that cannot hold one frame of `mtu`
 * bytes. virtio 1.2 §5.1.6.3.1: with VIRTIO_NET_F_MRG_RXBUF each buffer MUST hold at least the
 * virtio_net_hdr, and a frame spans as many buffers as it needs (num_buffers, §5.1.6.4.2) — so the
 * buffers one receive queue keeps posted, min(rxBuffers, ring size), must together hold the header
 * and an mtu frame, or the device can never place such a frame (it waits for room that cannot
 * come, and receive stalls behind it). Without MRG_RXBUF each buffer holds a whole frame (the
 * driver SHOULD post buffers of at least 1526 bytes, header + 1514, or 65562 with the guest GSO
 * features): the driver sizes each one header + mtu itself.
 */
function checkReceiveSetup(mergeable: boolean, bufferSize: number, mtu: number, rxBuffers: number, ringSizes: readonly number[]): void {
  if (!Number.isInteger(bufferSize) || bufferSize < NET_HDR_LEN + 1) {
    throw new UsageError('E_INVALID_ARGUMENT', `rxBufferSize must hold the ${NET_HDR_LEN}-byte header and a byte, got ${shown(bufferSize)}`);
  }
  // A ring size that is no size at all is the queue set-up's to refuse, with its own message.
  if (!mergeable || !ringSizes.every((n) => Number.isInteger(n) && n >= 1)) return;
  const ring = Math.min(...ringSizes);
  const posted = Math.min(rxBuffers, ring);
  const needed = NET_HDR_LEN + mtu;
  if (posted * bufferSize >= needed) return;
  const count = rxBuffers <= ring ? 'rxBuffers' : 'queueSize (the receive ring size)';
  throw new UsageError('E_INVALID_ARGUMENT',
    `the receive buffers cannot hold one frame: ${posted} buffers (min of rxBuffers ${rxBuffers} and receive ring size ${ring}) × rxBufferSize ${bufferSize} = ${posted * bufferSize} bytes, less than the ${NET_HDR_LEN}-byte header + mtu ${mtu} = ${needed} (virtio 1.2 §5.1.6.3.1)`,
    `raise rxBufferSize to at least ${Math.ceil(needed / posted)}, or ${count} to at least ${Math.ceil(needed / bufferSize)}, or lower mtu`);
}

/**
 * A virtio-net driver (virtio 1.2 §5.1): sends frames with a virtio_net_hdr, keeps receive buffers
 * posted and delivers received frames (joined across buffers with VIRTIO_NET_F_MRG_RXBUF), uses
 * several queue pairs through the control queue (CTRL_VQ + MQ, §5.1.6.5.5), and reads MAC and link
 * status from the configuration (§5.1.4). Posted receive buffers survive stop/reinit. Sending a
 * frame of 0 or more than maxFrame bytes rejects with RequestError E_FRAME_TOO_LARGE.
 */
export class NetDriver extends StatefulDriver {
  /** The 6-byte MAC address from the configuration (VIRTIO_NET_F_MAC), or all zeroes when the device gives none. */
  readonly mac: Uint8Array;
  /** Largest frame in bytes, header excluded, that send() takes and receive buffers hold (the mtu option; default 1514). */
  readonly maxFrame: number;
  /** Queue pairs set up (the most VQ_PAIRS_SET may ask for). */
  readonly queuePairs: number;
  private pairsInUse = 1;
  private nextPair = 0;
  private readonly rx: RxQueue[] = [];
  private readonly tx: RequestQueue<DmaRegion>[] = [];
  private readonly ctrl: ControlQueue | undefined;
  /** Transmit buffers, reused from send to send (one per send in flight). */
  private readonly txPool: TxPool;
  private readonly frameListeners = new Listeners<[ReceivedFrame]>('frame');
  private closed = false;
  /** close() (or a failed open()) has freed the buffers: a transmit buffer coming back later is freed at once. */
  private released = false;
  /** The memory buffers came from (the source's; a reinit target shares it). */
  private readonly dma: DmaAllocator;

  private constructor(device: VirtioDevice, queues: QueueSet, pairs: number, ctrlIndex: number | undefined, maxFrame: number) {
    super(device, queues);
    this.dma = device.dma;
    this.txPool = new TxPool(this.dma, NET_HDR_LEN + maxFrame, Infinity);
    this.maxFrame = maxFrame;
    this.queuePairs = pairs;
    const mergeable = device.has(NetFeature.MRG_RXBUF);
    for (let p = 0; p < pairs; p++) {
      this.rx.push(new RxQueue(queues.get(2 * p) as RequestQueue<DmaRegion>, this.dma, p, mergeable, (f) => this.emit(f), () => this.closed,
        (e) => device.markFailed(e)));
      this.tx.push(queues.get(2 * p + 1) as RequestQueue<DmaRegion>);
    }
    if (ctrlIndex !== undefined) this.ctrl = new ControlQueue(queues.get(ctrlIndex) as RequestQueue<undefined>, this.dma, device.address);
    this.mac = device.has(NetFeature.MAC) ? device.config.readBytes(NetConfig.MAC, 6) : new Uint8Array(6);
  }

  /**
   * Initialises the virtio-net device behind `transport` (virtio 1.2 §3.1.1, §5.1.5), sets up its
   * receive, transmit and control queues, posts receive buffers and reaches DRIVER_OK. Rejects with
   * DeviceError E_NOT_VIRTIO when it is not a network device (type 1), UsageError
   * E_INVALID_ARGUMENT for bad options (rxBuffers, queuePairs or mtu not a positive integer, an
   * rxBufferSize that cannot hold the 12-byte header and a byte, or — with MRG_RXBUF — receive
   * buffers that together cannot hold one mtu frame, §5.1.6.3.1), and the errors of VirtioDevice.open
   * and of the VQ_PAIRS_SET command; the device is closed again on failure.
   */
  static async open(transport: VirtioTransport, options: NetOpenOptions = {}): Promise<NetDriver> {
    checkTransportArgument(transport, 'NetDriver.open');
    // Every option is checked before the device is touched: a refusal leaves the transport as it was.
    const checked = checkDriverOpenOptions(options, 'NetDriver.open', NET_OPEN_OPTION_KEYS, ['mergeable']);
    options = checked.options;
    if (transport.deviceType !== DeviceType.NET) {
      throw new DeviceError('E_NOT_VIRTIO', `${transport.address} is a virtio device of type ${transport.deviceType}, not net (1)`,
        'open it with the driver for its type (BlkDriver, RngDriver, ConsoleDriver, …), or give the address of a virtio-net device (`uvirtio list` names each device\'s type)');
    }
    // A frame above 65535 bytes has no place in virtio-net without GSO (its mtu field is 16 bits,
    // §5.1.4); a ring holds at most 32768 buffers (§2.7, §2.8): beyond that an option is a mistake,
    // refused here rather than found out as E_DMA_EXHAUSTED.
    const maxFrame = checkValue(int(1, NET_MAX_FRAME), options.mtu ?? 1514, 'mtu');
    const rxBuffers = checkValue(int(1, 32768), options.rxBuffers ?? 64, 'rxBuffers');
    if (options.rxBufferSize !== undefined) checkValue(int(1, NET_HDR_LEN + NET_MAX_FRAME), options.rxBufferSize, 'rxBufferSize');
    const wanted = options.queuePairs;
    if (wanted !== undefined && (!Number.isInteger(wanted) || wanted < 1)) throw new UsageError('E_INVALID_ARGUMENT', `queuePairs must be a positive integer, got ${shown(wanted)}`);
    const optional: number[] = [NetFeature.MAC, NetFeature.STATUS];
    if (options.mergeable ?? true) optional.push(NetFeature.MRG_RXBUF);
    // The control queue follows the receive/transmit pairs (§5.1.2): a transport without a queue
    // beyond the first pair (vhost-user: the control queue is never one of the back-end's rings)
    // cannot have one, so neither CTRL_VQ nor MQ (which needs it) is accepted there.
    if (wanted !== 1 && transport.numQueues > 2) optional.push(NetFeature.CTRL_VQ, NetFeature.MQ);
    const device = await VirtioDevice.open(transport, { ...checked.open, features: { optional, layout: options.layout ?? 'auto' } });
    let net: NetDriver | undefined;
    try {
      // §5.1.5: max_virtqueue_pairs with MQ; the control queue follows the last pair the device has.
      // A control queue the transport does not have (a device announcing more pairs than its
      // transport has queues) is not used: the device then runs one pair (§5.1.6.5.5), as without MQ.
      const maxPairs = device.has(NetFeature.MQ) ? Math.max(1, device.config.read16(NetConfig.MAX_VIRTQUEUE_PAIRS)) : 1;
      const ctrlAt = device.has(NetFeature.CTRL_VQ) ? (device.has(NetFeature.MQ) ? 2 * maxPairs : 2) : undefined;
      const ctrlIndex = ctrlAt !== undefined && ctrlAt < transport.numQueues ? ctrlAt : undefined;
      const pairs = ctrlIndex === undefined ? 1 : Math.min(maxPairs, wanted ?? maxPairs);
      const sizeOf = (q: number): number => options.queueSize ?? Math.min(transport.queueMaxSize(q), 256);
      const bufferSize = device.has(NetFeature.MRG_RXBUF) ? options.rxBufferSize ?? NET_HDR_LEN + maxFrame : NET_HDR_LEN + maxFrame;
      checkReceiveSetup(device.has(NetFeature.MRG_RXBUF), bufferSize, maxFrame, rxBuffers, Array.from({ length: pairs }, (_, p) => sizeOf(2 * p)));
      const queues = new QueueSet(device);
      for (let p = 0; p < pairs; p++) {
        queues.add(2 * p, { size: sizeOf(2 * p), drains: false });
        queues.add(2 * p + 1, { size: sizeOf(2 * p + 1) });
      }
      if (ctrlIndex !== undefined) queues.add(ctrlIndex, { size: Math.min(sizeOf(ctrlIndex), 64) });
      await device.driverOk();
      net = new NetDriver(device, queues, pairs, ctrlIndex, maxFrame);
      for (const rx of net.rx) rx.fill(Math.min(rxBuffers, sizeOf(2 * rx.pair)), bufferSize);
      if (pairs > 1) await net.setQueuePairs(pairs);
      return net;
    } catch (e) {
      // Reset and released, the caller's transport left open and unowned (as VirtioDevice.open's
      // own refusals leave it): a corrected open on it works.
      await device.close({ keepTransport: true });
      // The device was reset: what this open allocated (a receive buffer allocation failing leaves
      // the ones before it, the control buffer) is freed.
      if (net) {
        net.closed = true;
        net.release();
      }
      throw e;
    }
  }

  /** Link status from the configuration (up when the device has no STATUS feature). */
  get linkUp(): boolean {
    if (!this.device.has(NetFeature.STATUS)) return true;
    return (this.device.config.read16(NetConfig.STATUS) & NetStatus.LINK_UP) !== 0;
  }

  /**
   * Receive buffers dropped because the device described them impossibly: a used length shorter
   * than the virtio_net_hdr (E_DEVICE_SHORT_USED_LEN) or a num_buffers of 0 or beyond the ring
   * (E_DEVICE_BAD_REPLY).
   */
  get malformedFrames(): number {
    return this.rx.reduce((n, rx) => n + rx.malformed, 0);
  }
  /** The last of those, as an error with its code (null when there was none). */
  get lastMalformed(): UvirtioError | null {
    return this.rx.reduce<UvirtioError | null>((last, rx) => rx.lastMalformed ?? last, null);
  }

  /** Queue pairs the device is using now. */
  get activePairs(): number {
    return this.pairsInUse;
  }

  /** Asks the device to use `pairs` queue pairs (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); 1 to queuePairs. */
  async setQueuePairs(pairs: number): Promise<void> {
    if (!this.ctrl || !Number.isInteger(pairs) || pairs < 1 || pairs > this.queuePairs) {
      throw new UsageError('E_INVALID_ARGUMENT', `${this.device.address}: can use 1 to ${this.queuePairs} queue pairs${this.ctrl ? '' : ' (no control queue)'}, not ${shown(pairs)}`);
    }
    await this.ctrl.setQueuePairs(pairs);
    this.pairsInUse = pairs;
  }

  /** Calls `listener` for each frame received, in order per pair. Returns a function that unsubscribes. */
  onFrame(listener: (f: ReceivedFrame) => void): () => void {
    return this.frameListeners.add(listener);
  }

  /**
   * Sends one frame (without header) behind a virtio_net_hdr built from `header` (default all
   * zero: no offloads), on `pair` (default: the pairs in use, in turn). Rejects E_INVALID_ARGUMENT
   * for a header with a field NetHeader does not have (a misspelt `gsoTyp`) or a value its field
   * in struct virtio_net_hdr cannot hold (u8 flags / gso_type, le16 others: virtio 1.2 §5.1.6),
   * E_FRAME_TOO_LARGE for a frame of 0 or more than maxFrame bytes; nothing is sent then.
   */
  async send(frame: Uint8Array, header: Partial<NetHeader> = {}, pair?: number): Promise<void> {
    if (this.closed) throw new UsageError('E_CLOSED', `${this.device.address}: the driver is closed`);
    const bytes = plainBytes(frame); // the array's own memory, whatever its own properties say
    if (!bytes) {
      throw new UsageError('E_INVALID_ARGUMENT', `send: the frame must be a Uint8Array, got ${shown(frame)}`, 'pass the Ethernet frame (without the virtio_net_hdr) as a Uint8Array');
    }
    const len = bytes.length;
    if (len === 0 || len > this.maxFrame) {
      throw new RequestError('E_FRAME_TOO_LARGE', `a frame of ${len} bytes does not fit (1 to ${this.maxFrame})`,
        'split the payload, or open the driver with a larger mtu');
    }
    const hdr = checkNetHeader(header, 'send'); // each field read once, checked; E_INVALID_ARGUMENT otherwise
    // The header's fields are the caller's getters: one may have transferred or shrunk the frame's buffer.
    if (bytes.length !== len) {
      throw new UsageError('E_INVALID_ARGUMENT', 'send: the frame\'s memory was detached or shrunk while the header was read',
        'keep the frame\'s ArrayBuffer (do not transfer or resize it) until send() settles');
    }
    const p = pair ?? this.nextPair++ % this.pairsInUse;
    if (!Number.isInteger(p) || p < 0 || p >= this.pairsInUse) {
      throw new UsageError('E_INVALID_ARGUMENT', `${this.device.address}: pair ${shown(p)} is not in use (0 to ${this.pairsInUse - 1})`);
    }
    const buf = this.txPool.take()!; // unbounded: always a buffer
    try {
      writeNetHeader(hdr, buf.bytes); // the checked copy; the buffer is the pool's own
      buf.bytes.set(bytes, NET_HDR_LEN);
      await this.tx[p]!.submit([{ addr: buf.iova, len: NET_HDR_LEN + len }], [], buf);
    } finally {
      // One in flight at close() comes back here, rejected: freed at once if close() released the pool.
      this.txPool.give(buf);
    }
  }

  /**
   * After reinit the device starts from reset with one pair in use: the driver sends
   * VQ_PAIRS_SET again (as QEMU's vhost-vdpa replays control commands on a migration target).
   */
  override async reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<void> {
    for (const rx of this.rx) rx.restarting(false);
    await super.reinit(snapshot, options);
    this.repostIdle();
    if (this.pairsInUse > 1) await this.ctrl!.setQueuePairs(this.pairsInUse);
  }

  /** A recovered device starts from reset with one pair in use, as after reinit: VQ_PAIRS_SET again. */
  override async recover(): Promise<void> {
    // Only a device that needs a reset gets one: a recover() refused on a live device leaves its frames alone.
    if (this.device.phase === 'needs-reset') for (const rx of this.rx) rx.restarting(true);
    await super.recover();
    this.repostIdle();
    if (this.pairsInUse > 1) await this.ctrl!.setQueuePairs(this.pairsInUse);
  }

  /**
   * QueueSet posts again the buffers the reset rings forgot; the buffers a halted queue refused
   * (taken while the failure was settled) are the RxQueues' to post. Then every receive queue has
   * min(rxBuffers, its size) buffers posted again.
   */
  private repostIdle(): void {
    for (const rx of this.rx) rx.restart();
  }

  private emit(f: ReceivedFrame): void {
    this.frameListeners.emit(f);
  }

  protected async shutDown(reason?: UvirtioError): Promise<void> {
    this.closed = true;
    await this.queues.close(reason);
    // Only now that the device was reset can nothing write into (or read from) the buffers any more.
    this.release();
  }

  /** Frees the receive, transmit and control buffers: only after the device was reset. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    for (const rx of this.rx) rx.release();
    this.txPool.release();
    this.ctrl?.release(this.dma);
  }
}

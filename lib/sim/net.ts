// virtio-net as a loopback cable (virtio 1.2 §5.1): each frame transmitted on tx0 comes back on
// rx0 behind a fresh 12-byte virtio_net_hdr. Frames wait in the device until the driver posts
// receive buffers. One queue pair: MQ needs the control queue, which this model does not have.

import { DeviceType, NET_HDR_LEN, NetConfig, NetFeature, NetStatus, bit } from '../virtio/constants.js';
import { gather, scatter } from './chain-io.js';
import { DeviceConfigSpace, type ConfigField } from './device-config.js';
import type { DeviceModel, Filled, ModelHost } from './model.js';
import { badChain, type Chain } from './ring.js';

export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;
/** Offset of num_buffers in the modern header (virtio 1.2 §5.1.6). */
const HDR_NUM_BUFFERS = 10;

// struct virtio_net_config (virtio 1.2 §5.1.4): mac is an array of bytes, read one by one.
const NET_CONFIG_FIELDS: readonly ConfigField[] = [
  ...Array.from({ length: 6 }, (_, i) => ({ offset: NetConfig.MAC + i, size: 1 as const })),
  { offset: NetConfig.STATUS, size: 2 },
  { offset: NetConfig.MAX_VIRTQUEUE_PAIRS, size: 2 },
  { offset: NetConfig.MTU, size: 2 },
];

export class NetModel implements DeviceModel {
  readonly deviceType = DeviceType.NET;
  readonly queueCount = 2;
  readonly features = bit(NetFeature.MAC) | bit(NetFeature.STATUS);
  readonly config = new DeviceConfigSpace(NetConfig.LEN, NET_CONFIG_FIELDS);
  /** Frames looped back and not yet received. */
  private backlog: Uint8Array[] = [];
  /** Frames dropped: link down, or a receive buffer too small for header and frame. */
  dropped = 0;
  private host: ModelHost | undefined;

  constructor(mac: Uint8Array) {
    this.config.bytes.set(mac, NetConfig.MAC);
    this.config.setU16(NetConfig.STATUS, NetStatus.LINK_UP);
    this.config.setU16(NetConfig.MAX_VIRTQUEUE_PAIRS, 1);
  }

  get mac(): Uint8Array {
    return this.config.bytes.slice(NetConfig.MAC, NetConfig.MAC + 6);
  }

  get linkUp(): boolean {
    return (this.config.bytes[NetConfig.STATUS]! & NetStatus.LINK_UP) !== 0;
  }

  /** Plugs or unplugs the cable: a config change the driver sees through STATUS (§5.1.4). */
  setLinkUp(up: boolean): void {
    this.config.setU16(NetConfig.STATUS, up ? NetStatus.LINK_UP : 0);
    this.host?.configChanged();
  }

  attach(host: ModelHost): void {
    this.host = host;
  }

  fetchesRequests(q: number): boolean {
    return q === NET_TX_QUEUE;
  }

  /** §5.1.6.2: a transmit chain is the header then the frame, all device-readable. */
  serve(q: number, chain: Chain): number {
    const host = this.requireHost();
    if (chain.readableLen < NET_HDR_LEN) {
      throw badChain(q, `tx chain ${chain.id} is shorter than the ${NET_HDR_LEN}-byte virtio_net_hdr`);
    }
    if (!this.linkUp) {
      this.dropped++;
      return 0;
    }
    this.backlog.push(gather(host.mem, chain.readable, NET_HDR_LEN, chain.readableLen - NET_HDR_LEN));
    host.wake(NET_RX_QUEUE);
    return 0;
  }

  /** §5.1.6.4: one buffer per frame (no MRG_RXBUF), so num_buffers is 1. */
  receive(_q: number, take: () => Chain | undefined): Filled[] {
    const mem = this.requireHost().mem;
    const filled: Filled[] = [];
    while (this.backlog.length > 0) {
      const chain = take();
      if (!chain) break;
      const frame = this.backlog.shift()!;
      if (chain.writableLen < NET_HDR_LEN + frame.length) {
        this.dropped++;
        filled.push({ chain, written: 0 });
        continue;
      }
      const header = new Uint8Array(NET_HDR_LEN);
      new DataView(header.buffer).setUint16(HDR_NUM_BUFFERS, 1, true);
      scatter(mem, chain.writable, 0, header);
      scatter(mem, chain.writable, NET_HDR_LEN, frame);
      filled.push({ chain, written: NET_HDR_LEN + frame.length });
    }
    return filled;
  }

  reset(): void {
    this.backlog = [];
  }

  private requireHost(): ModelHost {
    if (!this.host) throw new Error('NetModel used before attach()');
    return this.host;
  }
}

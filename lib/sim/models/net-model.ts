// virtio-net as a cable (virtio 1.2 §5.1): each frame transmitted on pair i comes back on pair i's
// receive queue — of this device (loopback, the default) or of a joined peer — behind a fresh
// 12-byte virtio_net_hdr. Frames wait in the device until the driver posts receive buffers.
//
// Offered on request: MRG_RXBUF (a frame spreads over as many receive buffers as it needs, their
// count in num_buffers, §5.1.6.4) and, with more than one pair, the control queue with MQ: only
// pair 0 is used until the driver sends VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (§5.1.6.5.5).

import { DeviceType, NET_HDR_LEN, NetConfig, NetFeature, NetStatus, bit, hasFeature, NetHdr, NetGso } from '../../spec/index.js';
import { gather, scatter } from '../virtio/ring/chain-io.js';
import { DeviceConfigSpace, type ConfigField } from '../virtio/device-config.js';
import { SHORT_NET_RX_LEN, type ReplyFault } from '../virtio/faults.js';
import type { DeviceModel, Filled, ModelHost, ReceiveBuffers } from '../virtio/model.js';
import { mqCommand } from './net-ctrl.js';
import { badChain, type Chain } from '../virtio/ring/chain.js';

export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;

// struct virtio_net_config (virtio 1.2 §5.1.4): mac is an array of bytes, read one by one.
// Each field with the feature that makes it exist (§2.5.1).
const NET_CONFIG_FIELDS: readonly ConfigField[] = [
  ...Array.from({ length: 6 }, (_, i) => ({ offset: NetConfig.MAC + i, size: 1 as const, feature: NetFeature.MAC })),
  { offset: NetConfig.STATUS, size: 2, feature: NetFeature.STATUS },
  { offset: NetConfig.MAX_VIRTQUEUE_PAIRS, size: 2, feature: NetFeature.MQ },
  { offset: NetConfig.MTU, size: 2, feature: NetFeature.MTU },
];

export interface NetModelOptions {
  mac: Uint8Array;
  /** max_virtqueue_pairs; with a value the device offers CTRL_VQ and MQ (undefined: one pair, no control queue). */
  queuePairs: number | undefined;
  /** Offer VIRTIO_NET_F_MRG_RXBUF. */
  mergeable: boolean;
}

type Role = { kind: 'rx' | 'tx'; pair: number } | { kind: 'ctrl' } | { kind: 'none' };

export class NetModel implements DeviceModel {
  readonly deviceType = DeviceType.NET;
  readonly queueCount: number;
  readonly features: bigint;
  readonly config = new DeviceConfigSpace(NetConfig.LEN, NET_CONFIG_FIELDS);
  /** §5.1.3.1: of what this device offers, MQ requires CTRL_VQ. */
  readonly featureDependencies = [[NetFeature.MQ, NetFeature.CTRL_VQ]] as const;
  /** Frames dropped: link down, a receive buffer too small for header and frame, or still waiting for a receive buffer when the device was reset. */
  dropped = 0;
  private readonly maxPairs: number;
  private readonly hasCtrl: boolean;
  /** Pairs in use: 1 until VQ_PAIRS_SET; back to 1 on reset. */
  private pairs = 1;
  /** Frames waiting for receive buffers, per pair. */
  private backlog: Uint8Array[][];
  private negotiated = 0n;
  private peer: NetModel | undefined;
  private host: ModelHost | undefined;

  constructor(options: NetModelOptions) {
    this.maxPairs = options.queuePairs ?? 1;
    this.hasCtrl = options.queuePairs !== undefined;
    this.queueCount = 2 * this.maxPairs + (this.hasCtrl ? 1 : 0);
    this.features = bit(NetFeature.MAC) | bit(NetFeature.STATUS)
      | (this.hasCtrl ? bit(NetFeature.CTRL_VQ) | bit(NetFeature.MQ) : 0n)
      | (options.mergeable ? bit(NetFeature.MRG_RXBUF) : 0n);
    this.backlog = Array.from({ length: this.maxPairs }, () => []);
    this.config.bytes.set(options.mac, NetConfig.MAC);
    this.config.setU16(NetConfig.STATUS, NetStatus.LINK_UP);
    this.config.setU16(NetConfig.MAX_VIRTQUEUE_PAIRS, this.maxPairs);
  }

  get mac(): Uint8Array {
    return this.config.bytes.slice(NetConfig.MAC, NetConfig.MAC + 6);
  }

  get linkUp(): boolean {
    return (this.config.bytes[NetConfig.STATUS]! & NetStatus.LINK_UP) !== 0;
  }

  /** Queue pairs the device uses now. */
  get activePairs(): number {
    return this.pairs;
  }

  /** Plugs or unplugs the cable: a config change the driver sees through STATUS (§5.1.4). */
  setLinkUp(up: boolean): void {
    this.config.setU16(NetConfig.STATUS, up ? NetStatus.LINK_UP : 0);
    this.host?.configChanged();
  }

  /** Joins this device's cable to `other`'s: what one transmits, the other receives. */
  join(other: NetModel): void {
    this.peer = other;
    other.peer = this;
  }

  attach(host: ModelHost): void {
    this.host = host;
  }

  featuresAccepted(features: bigint): void {
    this.negotiated = features;
  }

  fetchesRequests(q: number): boolean {
    const kind = this.role(q).kind;
    return kind === 'tx' || kind === 'ctrl';
  }

  /** §5.1.6.5.5: before VQ_PAIRS_SET only pair 0 (and the control queue) is used. */
  queueActive(q: number): boolean {
    const r = this.role(q);
    return r.kind === 'ctrl' || ((r.kind === 'rx' || r.kind === 'tx') && r.pair < this.pairs);
  }

  serve(q: number, chain: Chain): number {
    const host = this.requireHost();
    const role = this.role(q);
    if (role.kind === 'ctrl') return this.control(q, chain);
    // §5.1.6.2: a transmit chain is the header then the frame, all device-readable.
    if (role.kind !== 'tx' || chain.readableLen < NET_HDR_LEN) {
      throw badChain(q, 'net-tx-malformed', `tx chain ${chain.id} is shorter than the ${NET_HDR_LEN}-byte virtio_net_hdr`);
    }
    this.checkTxHeader(q, chain, gather(host.mem, chain.readable, 0, NET_HDR_LEN));
    const target = this.peer ?? this;
    if (!this.linkUp || !target.linkUp) {
      this.dropped++;
      return 0;
    }
    target.deliver(role.pair, gather(host.mem, chain.readable, NET_HDR_LEN, chain.readableLen - NET_HDR_LEN));
    return 0;
  }

  receive(q: number, buffers: ReceiveBuffers): Filled[] {
    const role = this.role(q);
    if (role.kind !== 'rx') return [];
    const waiting = this.backlog[role.pair]!;
    const filled: Filled[] = [];
    while (waiting.length > 0) {
      const got = hasFeature(this.negotiated, NetFeature.MRG_RXBUF) ? this.fillMerged(q, waiting[0]!, buffers) : this.fillOne(q, waiting[0]!, buffers);
      if (!got) break;
      waiting.shift();
      filled.push(...got);
    }
    return filled;
  }

  /** used-len-short fits receive buffers only: transmit and control replies are legitimately short. */
  supportsReplyFault(q: number, fault: ReplyFault): boolean {
    return fault === 'used-len-short' && this.role(q).kind === 'rx';
  }

  /** used-len-short: the buffer reports fewer bytes than the 12-byte header (the frame is there). */
  receiveFault(_q: number, _fault: ReplyFault, filled: Filled): void {
    filled.written = SHORT_NET_RX_LEN;
  }

  reset(): void {
    // Frames still waiting for a receive buffer are not part of any virtqueue's state (a snapshot
    // does not carry them): a reset loses them, as a NIC's reset loses its FIFO. Counted, not silent.
    for (const waiting of this.backlog) this.dropped += waiting.length;
    this.backlog = this.backlog.map(() => []);
    this.pairs = 1;
    this.negotiated = 0n;
  }

  /** A frame arrives on pair `pair` (the sender's): it waits for a buffer of that pair, or of pair 0 when that pair is off. */
  private deliver(pair: number, frame: Uint8Array): void {
    const p = pair < this.pairs ? pair : 0;
    this.backlog[p]!.push(frame);
    this.host?.wake(2 * p);
  }

  /**
   * §5.1.6.2.1: num_buffers 0; flags 0 without CSUM (never offered here), so no NEEDS_CSUM and
   * never DATA_VALID / RSC_INFO; gso_type NONE without the HOST_* offloads (never offered here).
   */
  private checkTxHeader(q: number, chain: Chain, header: Uint8Array): void {
    const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const flags = v.getUint8(NetHdr.FLAGS);
    const gso = v.getUint8(NetHdr.GSO_TYPE);
    const numBuffers = v.getUint16(NetHdr.NUM_BUFFERS, true);
    if (flags !== 0 || gso !== NetGso.NONE || numBuffers !== 0) {
      this.host?.violation('net-tx-header', `tx chain ${chain.id}: header flags ${flags}, gso_type ${gso}, num_buffers ${numBuffers}`, q);
    }
  }

  /** §5.1.6.3.1: with MRG_RXBUF every receive buffer holds at least the header (recorded; used anyway). */
  private takeBuffer(q: number, buffers: ReceiveBuffers): Chain | undefined {
    const chain = buffers.take();
    if (chain && chain.writableLen < NET_HDR_LEN && hasFeature(this.negotiated, NetFeature.MRG_RXBUF)) {
      this.host?.violation('net-rx-buffer-small', `receive buffer ${chain.id} has ${chain.writableLen} bytes, less than the ${NET_HDR_LEN}-byte header`, q);
    }
    return chain;
  }

  /** Without MRG_RXBUF one buffer holds the frame, num_buffers is 1; a buffer too small drops it. */
  private fillOne(q: number, frame: Uint8Array, buffers: ReceiveBuffers): Filled[] | undefined {
    const chain = this.takeBuffer(q, buffers);
    if (!chain) return undefined;
    if (chain.writableLen < NET_HDR_LEN + frame.length) {
      this.dropped++;
      return [{ chain, written: 0 }];
    }
    this.write(chain.writable, frame, 1);
    return [{ chain, written: NET_HDR_LEN + frame.length }];
  }

  /** §5.1.6.4.2: the header in the first buffer, the frame across as many as it needs, all or none. */
  private fillMerged(q: number, frame: Uint8Array, buffers: ReceiveBuffers): Filled[] | undefined {
    const need = NET_HDR_LEN + frame.length;
    const chains: Chain[] = [];
    for (let room = 0; room < need; ) {
      const chain = this.takeBuffer(q, buffers);
      if (!chain) {
        buffers.putBack(chains.length);
        return undefined;
      }
      chains.push(chain);
      room += chain.writableLen;
    }
    this.write(chains.flatMap((c) => c.writable), frame, chains.length);
    let left = need;
    return chains.map((chain) => {
      const written = Math.min(left, chain.writableLen);
      left -= written;
      return { chain, written };
    });
  }

  private write(segments: Chain['writable'], frame: Uint8Array, numBuffers: number): void {
    const mem = this.requireHost().mem;
    const header = new Uint8Array(NET_HDR_LEN);
    new DataView(header.buffer).setUint16(NetHdr.NUM_BUFFERS, numBuffers, true);
    scatter(mem, segments, 0, header);
    scatter(mem, segments, NET_HDR_LEN, frame);
  }

  /** §5.1.6.5: class, command, data (device-readable), then the ack byte (device-writable). */
  private control(q: number, chain: Chain): number {
    const mem = this.requireHost().mem;
    if (chain.readableLen < 2 || chain.writableLen < 1) throw badChain(q, 'net-ctrl-malformed', `control chain ${chain.id} lacks class, command or the ack byte`);
    const command = gather(mem, chain.readable, 0, chain.readableLen);
    const result = mqCommand(command, hasFeature(this.negotiated, NetFeature.MQ), this.maxPairs);
    if (result.pairs !== undefined) this.setPairs(result.pairs);
    scatter(mem, chain.writable, 0, Uint8Array.of(result.ack));
    return 1;
  }

  /** Frames waiting on pairs switched off move to pair 0; the queues of every pair in use are looked at again. */
  private setPairs(pairs: number): void {
    for (let p = pairs; p < this.pairs; p++) this.backlog[0]!.push(...this.backlog[p]!.splice(0));
    this.pairs = pairs;
    for (let q = 0; q < 2 * pairs; q++) this.host?.wake(q);
  }

  /** §5.1.2: receiveq1, transmitq1, …, receiveqN, transmitqN, then controlq — at 2 when MQ is not negotiated. */
  private role(q: number): Role {
    if (hasFeature(this.negotiated, NetFeature.CTRL_VQ)) {
      const ctrl = hasFeature(this.negotiated, NetFeature.MQ) ? 2 * this.maxPairs : 2;
      if (q === ctrl) return { kind: 'ctrl' };
      if (q > ctrl) return { kind: 'none' };
    }
    if (q >= 2 * this.maxPairs) return { kind: 'none' };
    return { kind: q % 2 === 0 ? 'rx' : 'tx', pair: q >> 1 };
  }

  private requireHost(): ModelHost {
    if (!this.host) throw new Error('NetModel used before attach()');
    return this.host;
  }
}

// virtio-net in the reference device (virtio 1.2 §5.1): its options, its address options
// (sim:net?pairs=2&mergeable=1…), its handle, and how it builds its model — a NIC on a cable,
// net-model.ts. Registered with one line in lib/sim/models/index.ts; its driver is drivers/net/.

import { DeviceType } from '../../spec/index.js';
import { UsageError } from '../../errors.js';
import { checkValue, flag, int, text, type OptionValues } from '../../util/options.js';
import { SimDeviceHandle, type SimCommonOptions, type SimDevice, type SimModelType } from '../common.js';
import type { SimPciFunction } from '../pci/function.js';
import { NetModel } from './net-model.js';

/** createSimDevice({ type: 'net', … }). */
export interface SimNetOptions extends SimCommonOptions {
  /** Selects virtio-net (device id 1, virtio 1.2 §5.1). */
  type: 'net';
  /** "52:54:00:12:34:56" (the default) or 6 bytes. */
  mac?: string | Uint8Array;
  /** max_virtqueue_pairs; when given the device offers CTRL_VQ and MQ (default: one pair, no control queue). */
  queuePairs?: number;
  /** Offers VIRTIO_NET_F_MRG_RXBUF (default false). */
  mergeable?: boolean;
  /** Joins the cable to another reference NIC: frames sent on one arrive at the other (default: loopback). */
  peer?: SimNetDevice;
}

/** The handle of a reference virtio-net. */
export interface SimNetDevice extends SimDevice {
  /** Always 'net': narrows an AnySimDevice. */
  readonly type: 'net';
  /** The 6-byte MAC address its configuration space shows (VIRTIO_NET_F_MAC, virtio 1.2 §5.1.4). */
  readonly mac: Uint8Array;
  /** Frames dropped (link down, a receive buffer too small, or waiting for a receive buffer at a reset). */
  readonly dropped: number;
  /** Sets the link status bit: a config change. */
  setLinkUp(up: boolean): void;
  /** Queue pairs in use: 1 until the driver's VQ_PAIRS_SET. */
  readonly activePairs: number;
}

/** max_virtqueue_pairs (§5.1.4: 1 to 0x8000; the reference device stops at 64). */
const QUEUE_PAIRS = int(1, 64);
/** A MAC address as text. */
const MAC = text(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'a MAC address like 52:54:00:12:34:56');

/** sim:net?… options (besides the common ones, lib/sim/open.ts). */
const ADDRESS_OPTIONS = { mac: MAC, mergeable: flag(), pairs: QUEUE_PAIRS };

/** The model behind each NIC handle, for joining cables (peer). */
const netModels = new WeakMap<SimNetDevice, NetModel>();

/** virtio-net as the reference device's registry (models/index.ts) knows it. */
export const net: SimModelType<SimNetOptions, SimNetDevice> = {
  name: 'net',
  deviceId: DeviceType.NET,
  /** Network / Ethernet, as QEMU's virtio-net-pci. */
  classCode: 0x020000,
  optionKeys: { mac: true, queuePairs: true, mergeable: true, peer: true },
  addressOptions: ADDRESS_OPTIONS,
  fromAddress: (v: OptionValues<typeof ADDRESS_OPTIONS>) => ({
    ...(v.mac !== undefined ? { mac: v.mac } : {}),
    mergeable: v.mergeable ?? false,
    ...(v.pairs !== undefined ? { queuePairs: v.pairs } : {}),
  }),
  create: (options) => {
    const pairs = options.queuePairs === undefined ? undefined : checkValue(QUEUE_PAIRS, options.queuePairs, 'queuePairs');
    const model = new NetModel({ mac: parseMac(options.mac ?? '52:54:00:12:34:56'), queuePairs: pairs, mergeable: options.mergeable ?? false });
    if (options.peer) {
      const other = netModels.get(options.peer);
      if (!other) throw new UsageError('E_INVALID_ARGUMENT', 'peer must be a reference NIC made by createSimDevice');
      model.join(other);
    }
    return {
      model,
      handle: (fn) => {
        const handle = new SimNetHandle(fn, model);
        netModels.set(handle, model);
        return handle;
      },
    };
  },
};

class SimNetHandle extends SimDeviceHandle implements SimNetDevice {
  readonly type = 'net';
  constructor(fn: SimPciFunction, private readonly model: NetModel) {
    super(fn);
  }
  get mac(): Uint8Array {
    return this.model.mac;
  }
  get dropped(): number {
    return this.model.dropped;
  }
  setLinkUp(up: boolean): void {
    this.model.setLinkUp(up);
  }
  get activePairs(): number {
    return this.model.activePairs;
  }
}

function parseMac(mac: string | Uint8Array): Uint8Array {
  if (typeof mac === 'string') return Uint8Array.from(checkValue(MAC, mac, 'mac').split(':'), (h) => Number.parseInt(h, 16));
  if (mac.length !== 6) throw new UsageError('E_INVALID_ARGUMENT', `a MAC address is 6 bytes, got ${mac.length}`);
  return Uint8Array.from(mac);
}

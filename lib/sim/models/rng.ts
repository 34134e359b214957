// virtio-rng (virtio 1.2 §5.4) in the reference device, the whole device type in one file: its
// options, its address options (sim:rng?seed=N), its handle and its model. One request queue of
// device-writable buffers, each filled with entropy: from crypto.randomFillSync, or — with a seed,
// so a test can predict the bytes — from a xorshift32 generator. Registered with one line in
// lib/sim/models/index.ts; its driver is drivers/rng/.

import { randomFillSync } from 'node:crypto';
import { DeviceType } from '../../spec/index.js';
import { int, type OptionValues } from '../../util/options.js';
import { SimDeviceHandle, type SimCommonOptions, type SimDevice, type SimModelType } from '../common.js';
import type { SimPciFunction } from '../pci/function.js';
import { scatter } from '../virtio/ring/chain-io.js';
import { DeviceConfigSpace } from '../virtio/device-config.js';
import type { DeviceModel, Filled, ModelHost } from '../virtio/model.js';
import { badChain, type Chain } from '../virtio/ring/chain.js';

/** createSimDevice({ type: 'rng', … }). */
export interface SimRngOptions extends SimCommonOptions {
  /** Selects virtio-rng, the entropy device (device id 4, virtio 1.2 §5.4). */
  type: 'rng';
  /** A seed for a repeatable byte stream (default: crypto randomness). */
  seed?: number;
}

/** The handle of a reference virtio-rng. */
export interface SimRngDevice extends SimDevice {
  /** Always 'rng': narrows an AnySimDevice. */
  readonly type: 'rng';
  /** Bytes of entropy handed out. */
  readonly delivered: number;
}

/** sim:rng?seed=N: a repeatable stream. */
const ADDRESS_OPTIONS = { seed: int(1, 0xffffffff) };

/** virtio-rng as the reference device's registry (models/index.ts) knows it. */
export const rng: SimModelType<SimRngOptions, SimRngDevice> = {
  name: 'rng',
  deviceId: DeviceType.RNG,
  /** "Unclassified device", as QEMU's virtio-rng-pci. */
  classCode: 0xff0000,
  optionKeys: { seed: true },
  addressOptions: ADDRESS_OPTIONS,
  fromAddress: (v: OptionValues<typeof ADDRESS_OPTIONS>) => (v.seed !== undefined ? { seed: v.seed } : {}),
  create: (options) => {
    const model = new RngModel(options.seed);
    return { model, handle: (fn) => new SimRngHandle(fn, model) };
  },
};

class SimRngHandle extends SimDeviceHandle implements SimRngDevice {
  readonly type = 'rng';
  constructor(fn: SimPciFunction, private readonly model: RngModel) {
    super(fn);
  }
  get delivered(): number {
    return this.model.delivered;
  }
}

/** The device side of virtio-rng: serves requestq (queue 0) with entropy (§5.4.6). */
class RngModel implements DeviceModel {
  readonly deviceType = DeviceType.RNG;
  readonly queueCount = 1;
  readonly features = 0n;
  /** §5.4.4: virtio-rng has no device configuration. */
  readonly config = new DeviceConfigSpace(0, []);
  /** Bytes of entropy handed out. */
  delivered = 0;
  private state: number | undefined;
  private host: ModelHost | undefined;

  /** `seed`: a non-zero 32-bit number for a repeatable stream; undefined for crypto randomness. */
  constructor(seed: number | undefined) {
    this.state = seed === undefined ? undefined : (seed >>> 0) || 1;
  }

  attach(host: ModelHost): void {
    this.host = host;
  }

  fetchesRequests(): boolean {
    return true;
  }

  /** §5.4.6: the driver offers device-writable buffers only; the device fills them whole. */
  serve(q: number, chain: Chain): number {
    if (!this.host) throw new Error('RngModel used before attach()');
    if (chain.readableLen > 0 || chain.writableLen === 0) {
      throw badChain(q, 'rng-request-malformed', `rng request ${chain.id} must be device-writable buffers only (virtio 1.2 §5.4.6.1)`);
    }
    scatter(this.host.mem, chain.writable, 0, this.bytes(chain.writableLen));
    this.delivered += chain.writableLen;
    return chain.writableLen;
  }

  receive(): Filled[] {
    return [];
  }

  reset(): void {
    // The generator keeps going: entropy is not replayed after a reset.
  }

  private bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    if (this.state === undefined) return randomFillSync(out);
    let x = this.state;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    this.state = x >>> 0;
    return out;
  }
}

// virtio-rng (virtio 1.2 §5.4): one request queue of device-writable buffers, each filled with
// entropy. The reference device fills them from crypto.randomFillSync, or — with a seed, so a test
// can predict the bytes — from a xorshift32 generator.

import { randomFillSync } from 'node:crypto';
import { DeviceType } from '../spec/index.js';
import { scatter } from './chain-io.js';
import { DeviceConfigSpace } from './device-config.js';
import type { DeviceModel, Filled, ModelHost } from './model.js';
import { badChain, type Chain } from './ring.js';

export class RngModel implements DeviceModel {
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

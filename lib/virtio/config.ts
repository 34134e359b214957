// The device configuration space as a driver sees it (virtio 1.2 §2.5): width-checked reads and
// writes of 8, 16, 32 and 64 bits and byte ranges, each read inside one configuration generation.
//
// §2.5.1: a field wider than 32 bits, or a range of several fields, can change half-way through a
// read; the driver reads config_generation before and after and retries until both agree. That
// retry is written here once; a transport offers only raw accesses (VirtioTransport.readConfig,
// writeConfig, configGeneration). A 64-bit field is read as two 32-bit halves, low first, as
// virtio-pci requires (§4.1.3.1) and every transport allows.

import { DeviceError, UsageError } from '../errors.js';
import { BlkConfigExt, ConsoleConfig, DeviceType, NetConfig } from '../spec/index.js';
import type { ConfigWidth, VirtioTransport } from '../transport/types.js';
import { shown } from '../util/shown.js';
import { checkTransportOpen } from './device-core.js';

/** How often a read is retried while config_generation keeps changing (then E_CONFIG_UNSTABLE). */
const CONFIG_READ_ATTEMPTS = 64;

/**
 * Bytes of each device type's configuration layout the SDK knows (virtio 1.2 §5.1.4, §5.2.4,
 * §5.3.4), by device type. An access inside it that the device does not expose is the device's
 * lack (E_CAP_MISSING), not the caller's mistake.
 */
const LAYOUT_LENGTH: Readonly<Record<number, number>> = {
  [DeviceType.NET]: NetConfig.LEN, [DeviceType.BLK]: BlkConfigExt.LEN, [DeviceType.CONSOLE]: ConsoleConfig.LEN,
};

/**
 * Device configuration of whichever transport the device is driven through now (after a reinit
 * onto another device, the target's). Offsets are bytes from the start of the device-specific
 * configuration (virtio 1.2 §5.x.4 layouts, e.g. BlkConfig, NetConfig). Values are little-endian
 * as the spec defines them.
 *
 * Errors: E_INVALID_ARGUMENT (an offset or length that is not a whole number of bytes, or an
 * access beyond the device type's configuration layout and the bytes the device exposes),
 * E_CAP_MISSING (DeviceError: a field of the type's layout the device does not expose — e.g. a
 * vhost-user back-end without VHOST_USER_PROTOCOL_F_CONFIG exposes none), E_CONFIG_UNSTABLE (config_generation changed on each of CONFIG_READ_ATTEMPTS reads),
 * E_UNSUPPORTED (a write where the transport has no configuration writes: vhost-user), and the
 * transport's own codes.
 */
export class DeviceConfig {
  /** `transport` is asked on every access, so the view follows a reinit onto another device. */
  constructor(private readonly transport: () => VirtioTransport) {}

  /** Bytes of device configuration the device exposes. */
  get length(): number {
    return this.transport().configLength;
  }

  /** An 8-bit field at `offset`. */
  read8(offset: number): number {
    return this.readField(offset, 1);
  }
  /** A le16 field at `offset`. */
  read16(offset: number): number {
    return this.readField(offset, 2);
  }
  /** A le32 field at `offset` (unsigned). */
  read32(offset: number): number {
    return this.readField(offset, 4);
  }
  /** A le64 field at `offset`: two 32-bit reads, low half first, inside one generation (§2.5.1, §4.1.3.1). */
  read64(offset: number): bigint {
    const t = this.checked(offset, 8);
    return this.consistent(t, () => {
      const lo = BigInt(t.readConfig(offset, 4) >>> 0);
      const hi = BigInt(t.readConfig(offset + 4, 4) >>> 0);
      return (hi << 32n) | lo;
    });
  }
  /** `length` bytes from `offset` (e.g. a MAC address), read byte by byte inside one generation. */
  readBytes(offset: number, length: number): Uint8Array {
    const t = this.checked(offset, length);
    return this.consistent(t, () => {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = t.readConfig(offset + i, 1);
      return out;
    });
  }

  /** Writes an 8-bit field. Throws E_UNSUPPORTED where the transport has no configuration writes. */
  write8(offset: number, value: number): void {
    this.writeField(offset, 1, value);
  }
  /** Writes a le16 field. Throws E_UNSUPPORTED where the transport has no configuration writes. */
  write16(offset: number, value: number): void {
    this.writeField(offset, 2, value);
  }
  /** Writes a le32 field. Throws E_UNSUPPORTED where the transport has no configuration writes. */
  write32(offset: number, value: number): void {
    this.writeField(offset, 4, value);
  }

  private readField(offset: number, width: ConfigWidth): number {
    const t = this.checked(offset, width);
    return this.consistent(t, () => t.readConfig(offset, width) >>> 0);
  }

  private writeField(offset: number, width: ConfigWidth, value: number): void {
    const t = this.checked(offset, width);
    if (!t.writeConfig) {
      throw new DeviceError('E_UNSUPPORTED', `${t.address}: this transport cannot write device configuration`,
        'vhost-user: VHOST_USER_SET_CONFIG is not implemented');
    }
    const max = 2 ** (8 * width);
    if (!Number.isInteger(value) || value < 0 || value >= max) {
      throw new UsageError('E_INVALID_ARGUMENT', `${t.address}: ${shown(value)} does not fit a ${8 * width}-bit configuration field`);
    }
    t.writeConfig(offset, width, value);
  }

  /** The current transport, once [offset, offset + width) is inside its configuration. */
  private checked(offset: number, width: number): VirtioTransport {
    const t = this.transport();
    // A closed transport reads as zeros and drops writes: say so rather than answer with them.
    checkTransportOpen(t, 'a device configuration access');
    const wellFormed = Number.isInteger(offset) && Number.isInteger(width) && offset >= 0 && width >= 1;
    if (wellFormed && offset + width > t.configLength && offset + width <= (LAYOUT_LENGTH[t.deviceType] ?? 0)) {
      // A field the device type defines, which this device does not expose: the device's lack.
      throw new DeviceError('E_CAP_MISSING',
        `${t.address}: the device exposes ${t.configLength} bytes of configuration; bytes ${offset}..${offset + width - 1} of its type's layout are not among them`,
        t.configMissingHint ?? 'the device does not expose its type\'s configuration layout; `uvirtio info` shows what it offers');
    }
    if (!wellFormed || offset + width > t.configLength) {
      throw new UsageError('E_INVALID_ARGUMENT',
        `${t.address}: device configuration access at ${shown(offset)}+${shown(width)} is outside its ${t.configLength} bytes`,
        'offsets and lengths are whole numbers of bytes within the device type\'s configuration layout');
    }
    return t;
  }

  /** Runs `read` until config_generation reads the same before and after (virtio 1.2 §2.5.1). */
  private consistent<T>(t: VirtioTransport, read: () => T): T {
    for (let attempt = 0; attempt < CONFIG_READ_ATTEMPTS; attempt++) {
      const before = t.configGeneration();
      const value = read();
      if (t.configGeneration() === before) return value;
    }
    throw new DeviceError('E_CONFIG_UNSTABLE', `${t.address}: device configuration changed on each of ${CONFIG_READ_ATTEMPTS} reads`,
      'the device keeps bumping config_generation; it may be misbehaving');
  }
}

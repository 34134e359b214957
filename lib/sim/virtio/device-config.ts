// Device-specific configuration bytes with the access rules of virtio 1.2 §4.1.3.1: each field is
// read with its own width and alignment (8-bit for u8, 16-bit for le16, 32-bit for le32), and a
// 64-bit field as two aligned 32-bit halves. Other accesses read 0, as a strict device answers,
// and are recorded (rules.ts config-access-invalid), as is reading an optional field whose feature
// the device does not offer (§2.5.1, config-field-not-offered; the bytes are returned anyway).

import { hasFeature } from '../../spec/index.js';
import { dataView } from './ring/chain.js';
import type { RuleId } from './rules.js';

export interface ConfigField {
  offset: number;
  /** 1, 2, 4 or 8 bytes. */
  size: 1 | 2 | 4 | 8;
  /** The feature that makes the field exist (§2.5.1); absent: always there. */
  feature?: number;
}

export class DeviceConfigSpace {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly fields: readonly ConfigField[];

  constructor(length: number, fields: readonly ConfigField[]) {
    this.bytes = new Uint8Array(length);
    this.view = dataView(this.bytes);
    this.fields = fields;
  }

  private fieldAt(offset: number): ConfigField | undefined {
    return this.fields.find((f) => offset >= f.offset && offset < f.offset + f.size);
  }

  /** Whether a driver read of `width` bytes at `offset` matches a field's width and alignment. */
  private accessible(field: ConfigField | undefined, offset: number, width: number): boolean {
    if (!field) return false;
    if (field.size === 8) return width === 4 && (offset - field.offset) % 4 === 0;
    return width === field.size && offset === field.offset;
  }

  /** A driver's read, checked against §4.1.3.1 and §2.5.1 with the device's `offered` features. */
  access(offset: number, width: 1 | 2 | 4, offered: bigint, report: (rule: RuleId, message: string) => void): number {
    const field = this.fieldAt(offset);
    if (!this.accessible(field, offset, width)) {
      const what = field ? ` (a ${field.size}-byte field at ${field.offset})` : '';
      report('config-access-invalid', `a ${width}-byte read at device configuration offset ${offset}${what}`);
      return 0;
    }
    if (field?.feature !== undefined && !hasFeature(offered, field.feature)) {
      report('config-field-not-offered', `device configuration field at ${field.offset} read, but feature ${field.feature} is not offered`);
    }
    return this.read(offset, width);
  }

  read(offset: number, width: 1 | 2 | 4): number {
    if (!this.accessible(this.fieldAt(offset), offset, width)) return 0;
    if (width === 1) return this.view.getUint8(offset);
    if (width === 2) return this.view.getUint16(offset, true);
    return this.view.getUint32(offset, true);
  }

  setU8(offset: number, v: number): void {
    this.view.setUint8(offset, v);
  }
  setU16(offset: number, v: number): void {
    this.view.setUint16(offset, v, true);
  }
  setU32(offset: number, v: number): void {
    this.view.setUint32(offset, v, true);
  }
  setU64(offset: number, v: bigint): void {
    this.view.setBigUint64(offset, v, true);
  }
}

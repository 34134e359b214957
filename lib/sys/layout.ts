// C struct layouts as data: each field's offset and width, and the struct's size, written down from
// the kernel header and checked when the layout is defined (fields inside the struct, aligned to
// their width, not overlapping). test/vm/layout.test.ts compares every layout with the C compiler's
// offsetof/sizeof on the host's own uapi headers.

/** A field's C type: unsigned 8/16/32/64-bit or signed 32-bit, little-endian. */
export type FieldType = 'u8' | 'u16' | 'u32' | 's32' | 'u64';

const WIDTH: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

/** One field of a {@link Layout}. */
export interface Field {
  /** Byte offset in the struct. */
  readonly offset: number;
  /** Its C type. */
  readonly type: FieldType;
}

/** A C struct's layout, checked by {@link defineLayout}. */
export interface Layout<F extends string> {
  /** The C name, e.g. "struct vfio_region_info". */
  readonly cName: string;
  /** sizeof the struct, bytes. */
  readonly size: number;
  /** Its fields by name. */
  readonly fields: Readonly<Record<F, Field>>;
}

/**
 * A layout from `[offset, type]` per field, checked: each field aligned to its width, inside `size`
 * bytes, overlapping no other.
 * @throws Error naming the field that breaks a rule (a programming error, found at import).
 */
export function defineLayout<F extends string>(cName: string, size: number, fields: Record<F, [number, FieldType]>): Layout<F> {
  const out = {} as Record<F, Field>;
  const used: [number, number, string][] = [];
  for (const [name, [offset, type]] of Object.entries(fields) as [F, [number, FieldType]][]) {
    const w = WIDTH[type];
    if (offset % w !== 0) throw new Error(`${cName}.${name}: offset ${offset} is not aligned to ${w}`);
    if (offset + w > size) throw new Error(`${cName}.${name}: ends past the struct's ${size} bytes`);
    for (const [s, e, other] of used) {
      if (offset < e && offset + w > s) throw new Error(`${cName}.${name} overlaps ${other}`);
    }
    used.push([offset, offset + w, name]);
    out[name] = { offset, type };
  }
  return { cName, size, fields: out };
}

/** A struct instance over a byte buffer (which may be longer than the struct, for trailing data). */
export class Struct<F extends string> {
  /** The buffer (passed to ioctl). */
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  /**
   * @param layout the struct's layout.
   * @param bytes a buffer of at least layout.size bytes (default: a new zeroed one).
   */
  constructor(readonly layout: Layout<F>, bytes?: Uint8Array) {
    this.bytes = bytes ?? new Uint8Array(layout.size);
    if (this.bytes.length < layout.size) throw new Error(`${layout.cName}: buffer of ${this.bytes.length} bytes is too small`);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** A 8/16/32-bit field. */
  get(name: F): number {
    const f = this.layout.fields[name];
    switch (f.type) {
      case 'u8': return this.view.getUint8(f.offset);
      case 'u16': return this.view.getUint16(f.offset, true);
      case 'u32': return this.view.getUint32(f.offset, true);
      case 's32': return this.view.getInt32(f.offset, true);
      case 'u64': throw new Error(`${this.layout.cName}.${name} is 64-bit: use get64`);
    }
  }

  /** A 64-bit field. */
  get64(name: F): bigint {
    const f = this.layout.fields[name];
    if (f.type !== 'u64') throw new Error(`${this.layout.cName}.${name} is not 64-bit`);
    return this.view.getBigUint64(f.offset, true);
  }

  /** Writes a field (little-endian); returns this, for chaining. */
  set(name: F, value: number | bigint): this {
    const f = this.layout.fields[name];
    switch (f.type) {
      case 'u8': this.view.setUint8(f.offset, Number(value)); break;
      case 'u16': this.view.setUint16(f.offset, Number(value), true); break;
      case 'u32': this.view.setUint32(f.offset, Number(value), true); break;
      case 's32': this.view.setInt32(f.offset, Number(value), true); break;
      case 'u64': this.view.setBigUint64(f.offset, BigInt(value), true); break;
    }
    return this;
  }
}

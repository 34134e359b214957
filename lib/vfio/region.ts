// A PCI BAR as a RegisterWindow: typed-array loads and stores on an mmap of the region when VFIO
// allows it (one machine load/store of exactly the width asked: a Uint32Array element access is a
// single 32-bit move, unlike DataView, which may be split), pread/pwrite of exactly that width on
// the device fd otherwise (vfio-pci performs an aligned 1/2/4-byte access as one access).
//
// Ordering: x86 keeps stores in program order and the mapping is uncached, so ring writes made
// before a notify store reach memory first (virtio 1.2 §2.7.13 "memory barrier" is a compiler
// barrier on x86; V8 does not reorder stores to typed arrays across each other).

import * as libc from '../sys/libc.js';
import type { RegisterWindow } from '../pci/function.js';
import { UsageError } from '../errors.js';

/** A register window that holds a mapping or fd share to release. */
export interface ClosableWindow extends RegisterWindow {
  /** Releases it (unmap); later accesses throw E_CLOSED. Idempotent. */
  close(): void;
}

function checkAccess(name: string, size: number, offset: number, width: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset + width > size || offset % width !== 0) {
    throw new UsageError('E_INVALID_ARGUMENT',
      `${name}: ${width * 8}-bit access at offset 0x${offset.toString(16)} is outside the ${size}-byte window or not aligned`);
  }
}

/** Register access through an mmap of a BAR: one load or store of exactly the width asked. */
export class MmapWindow implements ClosableWindow {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private mapping: libc.Mapping | null;

  /**
   * @param name names the window in messages ("0000:00:02.0 BAR4").
   * @param mapping the mmap of the region.
   * @param size the window's length, bytes.
   */
  constructor(readonly name: string, mapping: libc.Mapping, readonly size: number) {
    this.mapping = mapping;
    this.u8 = new Uint8Array(mapping.buffer, 0, size);
    this.u16 = new Uint16Array(mapping.buffer, 0, size >> 1);
    this.u32 = new Uint32Array(mapping.buffer, 0, size >> 2);
  }

  private live(offset: number, width: number): void {
    if (!this.mapping) throw new UsageError('E_CLOSED', `${this.name} is unmapped`);
    checkAccess(this.name, this.size, offset, width);
  }

  read8(offset: number): number { this.live(offset, 1); return this.u8[offset]!; }
  read16(offset: number): number { this.live(offset, 2); return this.u16[offset >> 1]!; }
  read32(offset: number): number { this.live(offset, 4); return this.u32[offset >> 2]!; }
  write8(offset: number, value: number): void { this.live(offset, 1); this.u8[offset] = value; }
  write16(offset: number, value: number): void { this.live(offset, 2); this.u16[offset >> 1] = value; }
  write32(offset: number, value: number): void { this.live(offset, 4); this.u32[offset >> 2] = value; }

  close(): void {
    if (!this.mapping) return;
    const m = this.mapping;
    this.mapping = null;
    libc.munmap(m);
  }
}

/** Register access through pread/pwrite at `base` in a device fd (also used for config space). */
export class FdWindow implements ClosableWindow {
  private readonly buf = new Uint8Array(4);
  private readonly view = new DataView(this.buf.buffer);
  private closed = false;

  /**
   * @param name names the window in messages.
   * @param fd the VFIO device fd.
   * @param base the region's offset in the fd.
   * @param size the window's length, bytes.
   */
  constructor(readonly name: string, private readonly fd: number, private readonly base: bigint, readonly size: number) {}

  private io(offset: number, width: number, write: boolean): void {
    if (this.closed) throw new UsageError('E_CLOSED', `${this.name} is closed`);
    checkAccess(this.name, this.size, offset, width);
    const what = `${this.name}+0x${offset.toString(16)}`;
    const part = this.buf.subarray(0, width);
    if (write) libc.pwrite(this.fd, part, this.base + BigInt(offset), what);
    else libc.pread(this.fd, part, this.base + BigInt(offset), what);
  }

  read8(offset: number): number { this.io(offset, 1, false); return this.view.getUint8(0); }
  read16(offset: number): number { this.io(offset, 2, false); return this.view.getUint16(0, true); }
  read32(offset: number): number { this.io(offset, 4, false); return this.view.getUint32(0, true); }
  write8(offset: number, value: number): void { this.view.setUint8(0, value); this.io(offset, 1, true); }
  write16(offset: number, value: number): void { this.view.setUint16(0, value, true); this.io(offset, 2, true); }
  write32(offset: number, value: number): void { this.view.setUint32(0, value >>> 0, true); this.io(offset, 4, true); }

  close(): void {
    this.closed = true;
  }
}

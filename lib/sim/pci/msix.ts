// MSI-X for the in-process function (PCI Local Bus 3.0 §6.8.2): a table of vectors in BAR 4 with
// per-vector mask bits, a pending-bit array, and the enable / function-mask bits of the capability's
// message control. In-process there is no message address: an unmasked vector is delivered to the
// handler given to enable(), always later (a microtask), never inside the register write that
// caused it.

import type { MsixController } from '../../pci/function.js';

/** Message control bits (PCI 3.0 §6.8.2.3). */
export const MsixControl = { ENABLE: 0x8000, FUNCTION_MASK: 0x4000, TABLE_SIZE_MASK: 0x7ff } as const;
export const MSIX_ENTRY_SIZE = 16;
/** Offset of Vector Control in a table entry; bit 0 masks the vector. */
const VECTOR_CONTROL = 12;

/** Where the capability keeps message control (the PCI configuration space). */
export interface MsixControlRegister {
  read(): number;
  write(value: number): void;
}

export class SimMsix implements MsixController {
  readonly tableSize: number;
  private readonly table: DataView;
  private readonly pending: boolean[];
  private handler: ((vector: number) => void) | undefined;
  private enabledCount = 0;

  constructor(tableSize: number, private readonly control: MsixControlRegister) {
    this.tableSize = tableSize;
    this.table = new DataView(new ArrayBuffer(tableSize * MSIX_ENTRY_SIZE));
    this.pending = new Array<boolean>(tableSize).fill(false);
    // PCI 3.0 §6.8.2.9: every vector starts masked.
    for (let v = 0; v < tableSize; v++) this.table.setUint32(v * MSIX_ENTRY_SIZE + VECTOR_CONTROL, 1, true);
  }

  /** What the host (VFIO, the kernel) does when it enables MSI-X: unmask the vectors it set up. */
  enable(count: number, handler: (vector: number) => void): number {
    const n = Math.max(0, Math.min(Math.floor(count), this.tableSize));
    if (n === 0) return 0;
    this.handler = handler;
    this.enabledCount = n;
    for (let v = 0; v < n; v++) this.table.setUint32(v * MSIX_ENTRY_SIZE + VECTOR_CONTROL, 0, true);
    this.control.write((this.control.read() | MsixControl.ENABLE) & ~MsixControl.FUNCTION_MASK);
    this.deliverPending();
    return n;
  }

  disable(): void {
    this.control.write(this.control.read() & ~MsixControl.ENABLE);
    this.handler = undefined;
    this.enabledCount = 0;
  }

  get active(): boolean {
    return (this.control.read() & MsixControl.ENABLE) !== 0;
  }

  /** Raises `vector`: delivered now if unmasked, else its pending bit is set until unmasked. */
  signal(vector: number): void {
    if (!this.active || vector >= this.tableSize) return;
    if (this.masked(vector)) {
      this.pending[vector] = true;
      return;
    }
    this.deliver(vector);
  }

  /** The driver changed message control in config space: unmasking may release pending vectors. */
  controlWritten(): void {
    this.deliverPending();
  }

  readTable(offset: number): number {
    return offset + 4 <= this.table.byteLength && offset % 4 === 0 ? this.table.getUint32(offset, true) : 0;
  }

  writeTable(offset: number, value: number): void {
    if (offset + 4 > this.table.byteLength || offset % 4 !== 0) return;
    this.table.setUint32(offset, value, true);
    if (offset % MSIX_ENTRY_SIZE === VECTOR_CONTROL) this.deliverPending();
  }

  /** Pending Bit Array, 32 vectors per dword. */
  readPba(offset: number): number {
    if (offset % 4 !== 0) return 0;
    let bits = 0;
    for (let i = 0; i < 32; i++) if (this.pending[offset * 8 + i]) bits |= 1 << i;
    return bits >>> 0;
  }

  private masked(vector: number): boolean {
    return (this.control.read() & MsixControl.FUNCTION_MASK) !== 0
      || (this.table.getUint32(vector * MSIX_ENTRY_SIZE + VECTOR_CONTROL, true) & 1) !== 0;
  }

  private deliverPending(): void {
    if (!this.active) return;
    for (let v = 0; v < this.tableSize; v++) {
      if (this.pending[v] && !this.masked(v)) {
        this.pending[v] = false;
        this.deliver(v);
      }
    }
  }

  /** Vectors the host did not set up (beyond enable()'s count) go nowhere, as on real hardware. */
  private deliver(vector: number): void {
    const handler = this.handler;
    if (!handler || vector >= this.enabledCount) return;
    queueMicrotask(() => handler(vector));
  }
}

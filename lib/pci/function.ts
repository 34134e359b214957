// The PciFunction interface: what the virtio-pci transport needs from a PCI function, whoever
// provides it — VfioPciFunction (lib/vfio) on a real device, SimPciFunction (lib/sim) in-process.

import type { DmaAllocator } from '../mem/dma.js';

/**
 * A BAR as a register window. Offsets are relative to the BAR's start. Accesses have exactly the
 * width named (virtio 1.2 §4.1.3.1: the driver accesses each field with its own width), and each
 * access is performed in program order with respect to the others and to ring memory writes.
 */
export interface RegisterWindow {
  /** Length of the window, bytes. */
  readonly size: number;
  /** Reads the byte at `offset`. */
  read8(offset: number): number;
  /** Reads the le16 at `offset` (2-byte aligned). */
  read16(offset: number): number;
  /** Reads the le32 at `offset` (4-byte aligned). */
  read32(offset: number): number;
  /** Writes the byte at `offset`. */
  write8(offset: number, value: number): void;
  /** Writes the le16 at `offset` (2-byte aligned). */
  write16(offset: number, value: number): void;
  /** Writes the le32 at `offset` (4-byte aligned). */
  write32(offset: number, value: number): void;
}

/** MSI-X as seen by a driver: a table of vectors, each delivered to a handler. */
export interface MsixController {
  /** Vectors the function's MSI-X table has (0 when it has no MSI-X capability). */
  readonly tableSize: number;
  /**
   * Enables vectors 0..count-1 and routes each interrupt to `handler(vector)`. Returns the number
   * actually enabled (may be fewer than asked; 0 means none: poll instead).
   */
  enable(count: number, handler: (vector: number) => void): number;
  /** Disables every vector; no handler is called afterwards. */
  disable(): void;
}

/**
 * What the virtio-pci transport needs from a PCI function (virtio 1.2 §4.1), whoever provides it:
 * `VfioPciFunction` on a real device, the reference device's `SimPciFunction` in-process.
 * Configuration space accesses are little-endian, with the width named (PCI Local Bus 3.0 §6.1).
 */
export interface PciFunction {
  /** Where the function lives, for messages: "0000:00:02.0", "sim:blk". */
  readonly address: string;
  /** Reads the configuration-space byte at `offset` (0–4095). */
  configRead8(offset: number): number;
  /** Reads the configuration-space le16 at `offset`. */
  configRead16(offset: number): number;
  /** Reads the configuration-space le32 at `offset`. */
  configRead32(offset: number): number;
  /** Writes the configuration-space byte at `offset`. */
  configWrite8(offset: number, value: number): void;
  /** Writes the configuration-space le16 at `offset`. */
  configWrite16(offset: number, value: number): void;
  /** Writes the configuration-space le32 at `offset`. */
  configWrite32(offset: number, value: number): void;
  /** BAR i (0–5) as a register window; throws E_CAP_MISSING when the BAR is absent or not memory. */
  bar(index: number): RegisterWindow;
  /** DMA memory the function can reach. */
  readonly dma: DmaAllocator;
  /** The function's MSI-X vectors (PCI Local Bus 3.0 §6.8.2). */
  readonly msix: MsixController;
  /**
   * True when the device behind the function runs on the driver's own thread (the in-process
   * reference device): it cannot finish anything while the driver spins, so polling does not
   * spin on it (OpenOptions.pollSpinUs defaults to 0).
   */
  readonly deviceOnDriverThread?: boolean;
  /** Releases everything the function holds (mappings, file descriptors, interrupts). Idempotent. */
  close(): void;
}

// The DEVICE_STATE mailbox I/O (docs/provisional-registers.md): the device's extra state, opaque to the driver,
// carried in a snapshot as hex. SAVE while STOP shows; LOAD between FEATURES_OK and DRIVER_OK. The
// buffer comes from the driver's DMA memory; the registers are the transport's (DeviceStateMailbox).

import type { DmaAllocator } from '../../mem/dma.js';
import type { DeviceStateMailbox } from '../../transport/types.js';

/**
 * DEVICE_STATE SAVE (the device must show STOP): its extra state, opaque, as hex; null when it has
 * none. Throws E_STATE_REFUSED (the device's reason).
 */
export function saveExtraState(dma: DmaAllocator, mailbox: DeviceStateMailbox): { bytes: string } | null {
  const length = mailbox.length();
  if (length === 0) return null;
  const buf = dma.alloc(length, 64);
  try {
    const got = mailbox.save(buf.iova, buf.size);
    return { bytes: Buffer.from(buf.bytes.subarray(0, got)).toString('hex') };
  } finally {
    dma.free(buf);
  }
}

/**
 * DEVICE_STATE LOAD (between FEATURES_OK and DRIVER_OK). Returns the buffer to free after
 * DRIVER_OK. Throws E_STATE_REFUSED (the device's reason).
 */
export function loadExtraState(dma: DmaAllocator, mailbox: DeviceStateMailbox, hex: string): { free(): void } {
  const bytes = Buffer.from(hex, 'hex');
  const buf = dma.alloc(bytes.length, 64);
  buf.bytes.set(bytes);
  try {
    mailbox.load(buf.iova, bytes.length);
  } catch (e) {
    dma.free(buf);
    throw e;
  }
  return { free: () => dma.free(buf) };
}

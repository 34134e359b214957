// Every number uvirtio takes from the virtio spec, in one place (the ground layer: every layer may
// import it; it imports nothing).
//
// Sources: OASIS virtio 1.2 (and the 1.4 draft where named), the Linux uapi headers, and — marked
// PROVISIONAL — the numbers uvirtio chose for "[PATCH V2 0/2] Virtqueue State Synchronization"
// (virtio-dev, July 2021), which never fixed them (docs/provisional-registers.md). A vendor with
// other numbers changes them here and nowhere else: every layer, the reference device included,
// reads them from this module.

export * from './status-features.js';
export * from './pci.js';
export * from './ring.js';
export * from './blk.js';
export * from './net.js';
export * from './console.js';

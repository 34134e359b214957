// Virtqueues: one interface (types.ts), two layouts (virtio 1.2 §2.7 split, §2.8 packed).

import { PackedVirtqueue } from './packed.js';
import { SplitVirtqueue } from './split.js';
import type { Layout, Virtqueue, VirtqueueOptions } from './types.js';

export type * from './types.js';
export { PackedVirtqueue, SplitVirtqueue };

/** A queue of the negotiated layout (packed when VIRTIO_F_RING_PACKED was accepted), its ring memory allocated and zeroed. */
export function createVirtqueue<T = unknown>(layout: Layout, opts: VirtqueueOptions): Virtqueue<T> {
  return layout === 'packed' ? new PackedVirtqueue<T>(opts) : new SplitVirtqueue<T>(opts);
}

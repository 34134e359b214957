// The DMA memory of a vhost-vdpa transport: vhost-user's memfd arena (shared, file-backed memory,
// which drivers/vhost/vdpa.c vhost_vdpa_va_map needs: it maps only shared file-backed VMAs), with
// its running-out error worded for vhost-vdpa (the option that makes it larger is ?arena=MiB here too).

import { DmaError, isUvirtioError } from '../../errors.js';
import type { DmaRegion } from '../../mem/dma.js';
import { MemfdArena } from '../vhost-user/arena.js';

/** A {@link MemfdArena} whose E_DMA_EXHAUSTED names the vhost-vdpa option. */
export class VdpaArena extends MemfdArena {
  protected override readonly owner = 'the vhost-vdpa memfd arena';

  /** See MemfdArena.alloc; E_DMA_EXHAUSTED says to open the device with a larger `?arena=MiB`. */
  override alloc(size: number, align?: number): DmaRegion {
    try {
      return super.alloc(size, align);
    } catch (e) {
      if (isUvirtioError(e) && e.code === 'E_DMA_EXHAUSTED') {
        throw new DmaError('E_DMA_EXHAUSTED', `the vhost-vdpa arena (${this.size} bytes) has no room for ${size} bytes`,
          'free regions you no longer need, or open the device with a larger arena (vhost-vdpa:/dev/vhost-vdpa-N?arena=MiB)', { cause: e });
      }
      throw e;
    }
  }
}

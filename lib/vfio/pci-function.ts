// VfioPciFunction: a PCI function opened through VFIO, as the PciFunction the virtio-pci transport
// drives. Opening follows Documentation/driver-api/vfio.rst: container → group (viable) → attach →
// IOMMU model → device fd; config space is region 7 (pread/pwrite), BARs are regions 0–5.

import { PciConfig } from '../pci/config.js';
import type { PciFunction, RegisterWindow } from '../pci/function.js';
import * as libc from '../sys/libc.js';
import { PciRegion, RegionFlag } from '../sys/vfio-uapi.js';
import { DeviceError, UsageError } from '../errors.js';
import { optionsObject, type OptionKeys } from '../util/options.js';
import type { IommuModel } from './container.js';
import { VfioDevice, type RegionInfo } from './device.js';
import type { VfioDmaAllocator } from './dma.js';
import { VfioError } from './errors.js';
import { VfioMsix } from './msix.js';
import { FdWindow, MmapWindow, type ClosableWindow } from './region.js';
import { VfioAddressSpace } from './space.js';
import { requireVfioUsable } from './sysfs.js';
import { registerTeardown, runAllSteps, unregisterTeardown } from './teardown.js';

const PCI_BASE_ADDRESS_SPACE_IO = 0x1;

/** Options of {@link VfioPciFunction.open}. */
export interface VfioOpenOptions {
  /**
   * An open function whose DMA address space this one joins: its group is attached to the same
   * container and the same allocator serves both, so every region either allocates (rings,
   * buffers) is reachable by both devices at the same IOVA. A migration target uses it to reach
   * the source's rings. The shared space lives until the last function using it closes.
   */
  shareWith?: VfioPciFunction;
}
/** VfioOpenOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const VFIO_OPEN_OPTION_KEYS: OptionKeys<VfioOpenOptions> = { shareWith: true };

/**
 * A PCI function bound to vfio-pci, as a {@link PciFunction}: configuration space through the VFIO
 * config region, BARs mmapped where VFIO allows it, DMA through the IOMMU (type1) or physical
 * addresses (no-IOMMU), MSI-X vectors as eventfds (docs/test-vm.md has the platform facts).
 */
export class VfioPciFunction implements PciFunction {
  /** DMA memory in this function's address space (shared with `shareWith` functions). */
  readonly dma: VfioDmaAllocator;
  /** MSI-X vectors through VFIO_DEVICE_SET_IRQS and eventfds. */
  readonly msix: VfioMsix;
  private readonly config: FdWindow;
  private readonly bars = new Map<number, ClosableWindow>();
  private closed = false;

  private constructor(
    /** The function's BDF, "0000:00:02.0". */
    readonly address: string,
    /** @internal The IOMMU model of the container (type1 or no-IOMMU). */
    readonly iommu: IommuModel,
    /** @internal The VFIO device file. */
    readonly device: VfioDevice,
    /** The IOMMU group number. */
    readonly groupId: number,
    /** @internal The container, groups and DMA allocator this function uses (shared with `shareWith` functions). */
    readonly space: VfioAddressSpace,
  ) {
    const cfg = device.regionInfo(PciRegion.CONFIG);
    if (cfg.size === 0) throw new VfioError('E_REGION_MISSING', `${address}: VFIO shows no configuration space region`);
    this.config = new FdWindow(`${address} config`, device.fd, cfg.offset, cfg.size);
    this.dma = space.dma;
    this.msix = new VfioMsix(device);
  }

  /**
   * Opens a function bound to vfio-pci. Throws E_BAD_ADDRESS, E_NO_DEVICE, E_NOT_VIRTIO,
   * E_DRIVER_BOUND/E_NOT_BOUND, E_VFIO_UNAVAILABLE, E_NO_IOMMU, E_GROUP_NOT_VIABLE or E_PERMISSION;
   * with `shareWith`, E_CLOSED when that function is closed, E_INVALID_ARGUMENT when it is this
   * same function or uses another IOMMU model; E_INVALID_ARGUMENT, before anything is opened, for
   * options that are not an object or have a key VfioOpenOptions does not.
   */
  static open(bdfText: string, options: VfioOpenOptions = {}): VfioPciFunction {
    options = optionsObject(options, 'VfioPciFunction.open options', VFIO_OPEN_OPTION_KEYS);
    const info = requireVfioUsable(bdfText);
    const iommu: IommuModel = info.noIommu ? 'noiommu' : 'type1v2';
    const peer = options.shareWith;
    if (peer) {
      if (peer.closed) throw new DeviceError('E_CLOSED', `${peer.address} is closed: ${info.bdf} cannot share its DMA memory`);
      if (peer.address === info.bdf) {
        throw new UsageError('E_INVALID_ARGUMENT', `${info.bdf} cannot share DMA memory with itself`, 'open a different function as the target');
      }
    }
    const space = peer ? peer.space.retain() : VfioAddressSpace.create(iommu).retain();
    let groupHeld = false;
    let device: VfioDevice | undefined;
    try {
      const group = space.acquireGroup(info.groupPath, info.iommuGroup, info.noIommu);
      groupHeld = true;
      device = new VfioDevice(group.deviceFd(info.bdf), info.bdf);
      const fn = new VfioPciFunction(info.bdf, iommu, device, info.iommuGroup, space);
      registerTeardown(fn);
      return fn;
    } catch (e) {
      const undo = [() => device?.close(), () => groupHeld && space.releaseGroup(info.iommuGroup), () => space.release()];
      for (const step of undo) {
        try {
          step();
        } catch {
          // the first error is the one to report
        }
      }
      throw e;
    }
  }

  /** Whether another open function uses the same DMA address space (shareWith). */
  sharesMemoryWith(other: VfioPciFunction): boolean {
    return this.space === other.space;
  }

  /** Whether close() has run. */
  get isClosed(): boolean {
    return this.closed;
  }

  private live(): void {
    if (this.closed) throw new DeviceError('E_CLOSED', `${this.address} is closed`);
  }

  configRead8(offset: number): number { this.live(); return this.config.read8(offset); }
  configRead16(offset: number): number { this.live(); return this.config.read16(offset); }
  configRead32(offset: number): number { this.live(); return this.config.read32(offset); }
  configWrite8(offset: number, value: number): void { this.live(); this.config.write8(offset, value); }
  configWrite16(offset: number, value: number): void { this.live(); this.config.write16(offset, value); }
  configWrite32(offset: number, value: number): void { this.live(); this.config.write32(offset, value); }

  /** @internal VFIO_DEVICE_GET_REGION_INFO of region `index` (BARs 0–5, ROM 6, config 7). */
  regionInfo(index: number): RegionInfo {
    this.live();
    return this.device.regionInfo(index);
  }

  /** Whether bar(i) is an mmap (true) or goes through pread/pwrite (false); undefined before bar(i). */
  barIsMapped(index: number): boolean | undefined {
    const w = this.bars.get(index);
    return w === undefined ? undefined : w instanceof MmapWindow;
  }

  bar(index: number): RegisterWindow {
    this.live();
    const open = this.bars.get(index);
    if (open) return open;
    if (!Number.isInteger(index) || index < PciRegion.BAR0 || index > PciRegion.BAR5) {
      throw new DeviceError('E_CAP_MISSING', `${this.address}: there is no BAR ${index} (BARs are 0–5)`);
    }
    const r = this.device.regionInfo(index);
    if (r.size === 0) throw new DeviceError('E_CAP_MISSING', `${this.address}: BAR ${index} is not implemented`);
    if (this.configRead32(PciConfig.BAR0 + 4 * index) & PCI_BASE_ADDRESS_SPACE_IO) {
      throw new DeviceError('E_CAP_MISSING', `${this.address}: BAR ${index} is an I/O-port BAR, not memory`);
    }
    const name = `${this.address} BAR${index}`;
    let w: ClosableWindow | null = null;
    if (r.flags & RegionFlag.MMAP) {
      try {
        const len = Math.ceil(r.size / libc.pageSize()) * libc.pageSize();
        const m = libc.mmap(len, libc.PROT.READ | libc.PROT.WRITE, libc.MAP.SHARED, this.device.fd, r.offset, name);
        w = new MmapWindow(name, m, r.size);
      } catch {
        w = null; // e.g. a sparse-mmap region: fall back to pread/pwrite
      }
    }
    w ??= new FdWindow(name, this.device.fd, r.offset, r.size);
    this.bars.set(index, w);
    return w;
  }

  /** VFIO_DEVICE_RESET. */
  reset(): void {
    this.live();
    this.device.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    unregisterTeardown(this);
    const steps: (() => void)[] = [
      () => this.msix.disable(),
      ...[...this.bars.values()].map((w) => () => w.close()),
      () => this.config.close(),
      () => this.device.close(),
      // The DMA memory, group and container are shared with `shareWith` functions: the last user frees them.
      () => this.space.releaseGroup(this.groupId),
      () => this.space.release(),
    ];
    try {
      runAllSteps(steps);
    } finally {
      this.bars.clear();
    }
  }
}

// A DMA address space shared by one or more VFIO functions: one container, the groups attached to
// it, and one DMA allocator whose mappings every attached group sees (Linux
// Documentation/driver-api/vfio.rst: "Groups, Devices, and IOMMUs" — a container may hold several
// groups, and type1 replays existing mappings into a group attached later). In no-IOMMU mode the
// addresses are physical and so global already; the allocator is shared all the same, so that a
// second function can find (lookup) and free the first one's regions.
//
// Everything is reference counted: a migration target opened with `shareWith` keeps the source's
// rings mapped after the source function closes; the last close unmaps, detaches and closes.

import { VfioContainer, type IommuModel } from './container.js';
import { NoIommuBackend, Type1Backend, VfioDmaAllocator } from './dma.js';
import { VfioGroup } from './group.js';
import { UsageError } from '../errors.js';
import { runAllSteps } from './teardown.js';

interface GroupRef {
  group: VfioGroup;
  refs: number;
}

/** One VFIO container, its attached groups and their shared DMA allocator, reference counted. */
export class VfioAddressSpace {
  /** The IOMMU model of the container. */
  readonly iommu: IommuModel;
  private readonly groups = new Map<number, GroupRef>();
  /**
   * The last group released: kept attached until release() has unmapped the regions, since
   * detaching a container's last group drops its IOMMU context and every mapping with it.
   */
  private readonly lastGroups: VfioGroup[] = [];
  private dmaAllocator: VfioDmaAllocator | null = null;
  private refs = 0;
  private closed = false;

  private constructor(
    /** The VFIO container (/dev/vfio/vfio). */
    readonly container: VfioContainer,
    iommu: IommuModel,
  ) {
    this.iommu = iommu;
  }

  /** A new container for a first function; the IOMMU model is set when the first group attaches. */
  static create(iommu: IommuModel): VfioAddressSpace {
    return new VfioAddressSpace(new VfioContainer(), iommu);
  }

  /** The allocator (created once the container's IOMMU model is set, i.e. after the first group). */
  get dma(): VfioDmaAllocator {
    if (!this.dmaAllocator) throw new UsageError('E_BAD_STATE', 'the VFIO address space has no group attached yet');
    return this.dmaAllocator;
  }

  /** Functions using this space now. */
  get users(): number {
    return this.refs;
  }

  /** Groups attached now, by IOMMU group number. */
  get groupIds(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  /**
   * The group `id` attached to this container: reused when a function of it is already open here
   * (a group can be opened by one opener at a time), else opened, checked viable and attached.
   * Each call takes a reference; give it back with releaseGroup(id).
   */
  acquireGroup(path: string, id: number, noIommu: boolean): VfioGroup {
    this.live();
    const held = this.groups.get(id);
    if (held) {
      held.refs++;
      return held.group;
    }
    if (noIommu !== (this.iommu === 'noiommu')) {
      throw new UsageError('E_INVALID_ARGUMENT',
        `IOMMU group ${id} is ${noIommu ? 'a no-IOMMU group' : 'behind an IOMMU'}, but this address space is ${this.iommu}`,
        'functions can share DMA memory only under the same IOMMU model');
    }
    const group = new VfioGroup(path, id, noIommu);
    try {
      group.attach(this.container);
      if (!this.dmaAllocator) {
        // VFIO_SET_IOMMU is allowed only once a group is attached (vfio.rst).
        this.container.setIommu(this.iommu);
        this.dmaAllocator = new VfioDmaAllocator(this.iommu === 'noiommu' ? new NoIommuBackend() : new Type1Backend(this.container));
      }
    } catch (e) {
      group.close();
      throw e;
    }
    this.groups.set(id, { group, refs: 1 });
    return group;
  }

  /** Gives back a reference from acquireGroup(); the last one detaches and closes the group. */
  releaseGroup(id: number): void {
    const held = this.groups.get(id);
    if (!held) return;
    if (--held.refs > 0) return;
    this.groups.delete(id);
    // With other groups still attached the mappings stay (they belong to the container); with
    // none left, release() unmaps everything before the container closes.
    if (this.groups.size > 0) held.group.close();
    else this.lastGroups.push(held.group);
  }

  /**
   * Takes one more user (a function opened with `shareWith`); give it back with release().
   * @throws UsageError E_CLOSED when the space is closed.
   */
  retain(): this {
    this.live();
    this.refs++;
    return this;
  }

  /** Drops one user; the last unmaps every region, detaches the groups and closes the container. */
  release(): void {
    if (this.closed || --this.refs > 0) return;
    this.closed = true;
    const steps: (() => void)[] = [
      () => this.dmaAllocator?.close(),
      ...this.lastGroups.map((g) => () => g.close()),
      ...[...this.groups.values()].map((g) => () => g.group.close()),
      () => this.container.close(),
    ];
    this.groups.clear();
    this.lastGroups.length = 0;
    runAllSteps(steps);
  }

  /** Whether the last user released it. */
  get isClosed(): boolean {
    return this.closed;
  }

  private live(): void {
    if (this.closed) throw new UsageError('E_CLOSED', 'the VFIO address space is closed (every function sharing it was closed)');
  }
}

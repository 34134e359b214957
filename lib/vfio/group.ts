// A VFIO group (/dev/vfio/N): the unit of isolation. It must be viable (every function in it on
// vfio-pci or unbound), is attached to a container, and hands out device fds by BDF.

import * as libc from '../sys/libc.js';
import { Struct } from '../sys/layout.js';
import { GroupFlag, groupStatus, VfioIoctl } from '../sys/vfio-uapi.js';
import type { VfioContainer } from './container.js';
import { VfioError } from './errors.js';
import { groupBlockers, groupMembers } from './sysfs.js';

/** A VFIO group file (/dev/vfio/N or /dev/vfio/noiommu-N): the unit of IOMMU isolation. */
export class VfioGroup {
  /** The group's fd. */
  readonly fd: number;
  private attached = false;
  private closed = false;

  /**
   * Opens the group file and checks it is viable.
   * @throws SysError E_PERMISSION / E_SYSCALL when the file cannot be opened; VfioError
   *   E_GROUP_NOT_VIABLE when another function of the group is bound to a host driver.
   */
  constructor(
    /** The group file's path. */
    readonly path: string,
    /** The IOMMU group number. */
    readonly id: number,
    /** Whether it is a no-IOMMU group. */
    readonly noIommu: boolean,
  ) {
    this.fd = libc.open(path, libc.O.RDWR,
      'the group may be open in another process (one opener at a time), or you are not root');
    try {
      const status = this.status();
      if (!(status & GroupFlag.VIABLE)) {
        const blockers = groupBlockers(id);
        const others = blockers.length ? blockers.map((m) => `${m.bdf} (${m.driver})`).join(', ')
          : groupMembers(id).map((m) => `${m.bdf} (${m.driver ?? 'no driver'})`).join(', ');
        throw new VfioError('E_GROUP_NOT_VIABLE', `IOMMU group ${id} is not viable: ${blockers.length ? 'it also holds' : 'it holds'} ${others}`,
          'bind every function of the group to vfio-pci (`uvirtio bind BDF`) or unbind it');
      }
    } catch (e) {
      libc.close(this.fd);
      throw e;
    }
  }

  /** VFIO_GROUP_GET_STATUS flags (VIABLE 1, CONTAINER_SET 2). */
  status(): number {
    const s = new Struct(groupStatus).set('argsz', groupStatus.size);
    libc.ioctl(this.fd, VfioIoctl.GROUP_GET_STATUS, s.bytes, 'VFIO_GROUP_GET_STATUS');
    return s.get('flags');
  }

  /** VFIO_GROUP_SET_CONTAINER (the ioctl takes a pointer to the container's fd). */
  attach(container: VfioContainer): void {
    const arg = new Uint8Array(4);
    new DataView(arg.buffer).setInt32(0, container.fd, true);
    libc.ioctl(this.fd, VfioIoctl.GROUP_SET_CONTAINER, arg, 'VFIO_GROUP_SET_CONTAINER');
    this.attached = true;
  }

  /** VFIO_GROUP_GET_DEVICE_FD: the argument is the device's name (its BDF), NUL-terminated. */
  deviceFd(bdf: string): number {
    const name = new TextEncoder().encode(`${bdf}\0`);
    return libc.ioctl(this.fd, VfioIoctl.GROUP_GET_DEVICE_FD, name, 'VFIO_GROUP_GET_DEVICE_FD');
  }

  /** Detaches from the container and closes the fd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.attached) {
      try {
        libc.ioctl(this.fd, VfioIoctl.GROUP_UNSET_CONTAINER, undefined, 'VFIO_GROUP_UNSET_CONTAINER');
      } catch {
        // Closing the fd detaches it as well.
      }
    }
    libc.close(this.fd);
  }
}

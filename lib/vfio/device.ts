// A VFIO device fd: its regions (BARs, ROM, config space) at fixed offsets of the fd, its interrupt
// indices, and reset (Linux include/uapi/linux/vfio.h; Documentation/driver-api/vfio.rst).

import * as libc from '../sys/libc.js';
import { Struct } from '../sys/layout.js';
import { DeviceFlag, deviceInfo, IrqSetFlag, irqInfo, irqSet, regionInfo, VfioIoctl } from '../sys/vfio-uapi.js';
import { VfioError } from './errors.js';

/** VFIO_DEVICE_GET_REGION_INFO's answer for one region (vfio.h struct vfio_region_info). */
export interface RegionInfo {
  /** Region index: BARs 0–5, ROM 6, configuration space 7. */
  index: number;
  /** VFIO_REGION_INFO_FLAG_* bits (READ 1, WRITE 2, MMAP 4, CAPS 8). */
  flags: number;
  /** Bytes; 0 for a region the device does not implement. */
  size: number;
  /** Where the region starts in the device fd (for pread/pwrite/mmap). */
  offset: bigint;
}

/** VFIO_DEVICE_GET_IRQ_INFO's answer for one interrupt index (vfio.h struct vfio_irq_info). */
export interface IrqInfo {
  /** Interrupt index: INTx 0, MSI 1, MSI-X 2. */
  index: number;
  /** VFIO_IRQ_INFO_* bits. */
  flags: number;
  /** Vectors the index has. */
  count: number;
}

/** A VFIO device file descriptor (VFIO_GROUP_GET_DEVICE_FD), with its regions and interrupts. */
export class VfioDevice {
  /** VFIO_DEVICE_FLAGS_* of the device (PCI, RESET, …). */
  readonly flags: number;
  /** How many regions the device has (9 for vfio-pci). */
  readonly numRegions: number;
  /** How many interrupt indices the device has. */
  readonly numIrqs: number;
  private closed = false;

  /**
   * Reads VFIO_DEVICE_GET_INFO of an open device fd.
   * @throws VfioError E_NOT_VIRTIO when it is not a vfio-pci device; SysError from the ioctl.
   */
  constructor(
    /** The device fd. */
    readonly fd: number,
    /** The device's BDF, for messages. */
    readonly address: string,
  ) {
    const info = new Struct(deviceInfo).set('argsz', deviceInfo.size);
    libc.ioctl(fd, VfioIoctl.DEVICE_GET_INFO, info.bytes, 'VFIO_DEVICE_GET_INFO');
    this.flags = info.get('flags');
    this.numRegions = info.get('num_regions');
    this.numIrqs = info.get('num_irqs');
    if (!(this.flags & DeviceFlag.PCI)) {
      throw new VfioError('E_NOT_VIRTIO', `${address} is not a vfio-pci device (flags 0x${this.flags.toString(16)})`);
    }
  }

  /** Whether VFIO offers a reset for the device (VFIO_DEVICE_FLAGS_RESET). */
  get canReset(): boolean {
    return (this.flags & DeviceFlag.RESET) !== 0;
  }

  /**
   * VFIO_DEVICE_GET_REGION_INFO of region `index`.
   * @throws VfioError E_REGION_MISSING for an index the device does not have.
   */
  regionInfo(index: number): RegionInfo {
    if (index < 0 || index >= this.numRegions) {
      throw new VfioError('E_REGION_MISSING', `${this.address} has no VFIO region ${index} (it has ${this.numRegions})`);
    }
    const r = new Struct(regionInfo).set('argsz', regionInfo.size).set('index', index);
    libc.ioctl(this.fd, VfioIoctl.DEVICE_GET_REGION_INFO, r.bytes, 'VFIO_DEVICE_GET_REGION_INFO');
    return { index, flags: r.get('flags'), size: Number(r.get64('size')), offset: r.get64('offset') };
  }

  /**
   * VFIO_DEVICE_GET_IRQ_INFO of interrupt index `index`.
   * @throws VfioError E_IRQ_MISSING for an index the device does not have.
   */
  irqInfo(index: number): IrqInfo {
    if (index < 0 || index >= this.numIrqs) {
      throw new VfioError('E_IRQ_MISSING', `${this.address} has no VFIO interrupt index ${index} (it has ${this.numIrqs})`);
    }
    const q = new Struct(irqInfo).set('argsz', irqInfo.size).set('index', index);
    libc.ioctl(this.fd, VfioIoctl.DEVICE_GET_IRQ_INFO, q.bytes, 'VFIO_DEVICE_GET_IRQ_INFO');
    return { index, flags: q.get('flags'), count: q.get('count') };
  }

  /** VFIO_DEVICE_SET_IRQS with DATA_EVENTFD|ACTION_TRIGGER: vector start+i signals fds[i]. */
  setIrqEventfds(index: number, start: number, fds: readonly number[]): void {
    const bytes = new Uint8Array(irqSet.size + 4 * fds.length);
    const s = new Struct(irqSet, bytes).set('argsz', bytes.length)
      .set('flags', IrqSetFlag.DATA_EVENTFD | IrqSetFlag.ACTION_TRIGGER)
      .set('index', index).set('start', start).set('count', fds.length);
    const data = new DataView(bytes.buffer, irqSet.size);
    fds.forEach((fd, i) => data.setInt32(4 * i, fd, true));
    libc.ioctl(this.fd, VfioIoctl.DEVICE_SET_IRQS, s.bytes, 'VFIO_DEVICE_SET_IRQS');
  }

  /** DATA_NONE|ACTION_TRIGGER with count 0: disables the whole index. */
  disableIrqs(index: number): void {
    const s = new Struct(irqSet).set('argsz', irqSet.size)
      .set('flags', IrqSetFlag.DATA_NONE | IrqSetFlag.ACTION_TRIGGER).set('index', index).set('start', 0).set('count', 0);
    libc.ioctl(this.fd, VfioIoctl.DEVICE_SET_IRQS, s.bytes, 'VFIO_DEVICE_SET_IRQS');
  }

  /**
   * DATA_NONE|ACTION_TRIGGER on one vector: the kernel signals its eventfd as if the device had
   * raised it (vfio.h: "kernel level interrupt loopback testing").
   */
  triggerIrq(index: number, vector: number): void {
    const s = new Struct(irqSet).set('argsz', irqSet.size)
      .set('flags', IrqSetFlag.DATA_NONE | IrqSetFlag.ACTION_TRIGGER).set('index', index).set('start', vector).set('count', 1);
    libc.ioctl(this.fd, VfioIoctl.DEVICE_SET_IRQS, s.bytes, 'VFIO_DEVICE_SET_IRQS');
  }

  /** VFIO_DEVICE_RESET (function-level or whatever reset the kernel found for it). */
  reset(): void {
    if (!this.canReset) {
      throw new VfioError('E_BAD_STATE', `${this.address} offers no reset through VFIO`,
        'reset the device through its own status register instead (virtio: write 0 to device_status)');
    }
    libc.ioctl(this.fd, VfioIoctl.DEVICE_RESET, undefined, 'VFIO_DEVICE_RESET');
  }

  /** Closes the fd. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}

// MSI-X through VFIO: each vector is bound to an eventfd with VFIO_DEVICE_SET_IRQS
// (DATA_EVENTFD|ACTION_TRIGGER on index VFIO_PCI_MSIX_IRQ_INDEX). lib/sys/eventfd-watch.ts waits
// for them — on the main thread's event loop (epoll through libuv) where Node allows it, else by a
// worker-thread poll(2) — and the handler is called once per vector that fired (interrupts that
// arrive before the eventfd is read count once, as with a real MSI-X).

import type { MsixController } from '../pci/function.js';
import { EventfdWatch } from '../sys/eventfd-watch.js';
import * as libc from '../sys/libc.js';
import { IrqInfoFlag, PciIrq } from '../sys/vfio-uapi.js';
import type { VfioDevice } from './device.js';
import { VfioError } from './errors.js';

/** One enable(): its eventfds (index = vector) and the watch over them. */
interface VectorSet {
  fds: number[];
  watch: EventfdWatch;
}

export class VfioMsix implements MsixController {
  readonly tableSize: number;
  private current: VectorSet | null = null;

  constructor(private readonly device: VfioDevice) {
    let count = 0;
    if (device.numIrqs > PciIrq.MSIX) {
      const info = device.irqInfo(PciIrq.MSIX);
      if (info.flags & IrqInfoFlag.EVENTFD) count = info.count;
    }
    this.tableSize = count;
  }

  enable(count: number, handler: (vector: number) => void): number {
    this.disable();
    const n = Math.max(0, Math.min(Math.floor(count), this.tableSize));
    if (n === 0) return 0;
    const fds: number[] = [];
    try {
      for (let i = 0; i < n; i++) fds.push(libc.eventfd());
      this.device.setIrqEventfds(PciIrq.MSIX, 0, fds);
    } catch (e) {
      fds.forEach((fd) => libc.close(fd));
      throw e;
    }
    const vectorOf = new Map(fds.map((fd, vector) => [fd, vector]));
    const watch = new EventfdWatch({
      onFire: (fd) => handler(vectorOf.get(fd)!),
      // Not thrown (it happens in an event callback); the request queues' watchdog finds
      // completions by polling from here on, as for a device that sends no interrupt.
      onError: (fd, e) => process.emitWarning(`${this.device.address}: MSI-X vector ${vectorOf.get(fd)} interrupt delivery stopped (${e.message}); its completions are found by the watchdog's polling from now on`,
        { code: 'E_INTERRUPT_DELIVERY' }),
    });
    this.current = { fds, watch };
    watch.set(fds);
    return n;
  }

  /** Vectors enabled now (0 when disabled). */
  get enabled(): number {
    return this.current?.fds.length ?? 0;
  }

  /**
   * Makes the kernel signal a vector's eventfd as if the device had raised it (VFIO interrupt
   * loopback): checks the delivery path without the device's help.
   */
  trigger(vector: number): void {
    if (!this.current || vector < 0 || vector >= this.current.fds.length) {
      throw new VfioError('E_IRQ_MISSING', `${this.device.address}: MSI-X vector ${vector} is not enabled`);
    }
    this.device.triggerIrq(PciIrq.MSIX, vector);
  }

  disable(): void {
    const set = this.current;
    if (!set) return;
    this.current = null;
    try {
      this.device.disableIrqs(PciIrq.MSIX);
    } finally {
      // The watch holds duplicates of the fds (closed by close()), so ours can go now: VFIO has
      // dropped its references with DISABLE, and nothing waits on these numbers.
      set.watch.close();
      for (const fd of set.fds) {
        try {
          libc.close(fd);
        } catch {
          // already gone
        }
      }
    }
  }
}

// MSI-X through VFIO: each vector is bound to an eventfd with VFIO_DEVICE_SET_IRQS
// (DATA_EVENTFD|ACTION_TRIGGER on index VFIO_PCI_MSIX_IRQ_INDEX); a worker-thread poll(2) over the
// eventfds (lib/sys/libc.ts pollReadableAsync) tells the main thread which fired, and the handler
// is called once per vector that fired (coalesced interrupts count once, as with a real MSI-X).

import type { MsixController } from '../pci/function.js';
import * as libc from '../sys/libc.js';
import { IrqInfoFlag, PciIrq } from '../sys/vfio-uapi.js';
import type { VfioDevice } from './device.js';
import { VfioError } from './errors.js';

/** One enable(): its eventfds, the wake-up eventfd, and whether a poll is still out on them. */
interface VectorSet {
  fds: number[];
  wake: number;
  /** Unregisters `wake` from the exit-time wake-ups (libc.wakeOnExit). */
  unhook: () => void;
  handler: (vector: number) => void;
  active: boolean;
  polling: boolean;
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
    const wake = libc.eventfd();
    const set: VectorSet = { fds, wake, unhook: libc.wakeOnExit(wake), handler, active: true, polling: false };
    this.current = set;
    this.arm(set);
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

  private arm(set: VectorSet): void {
    set.polling = true;
    libc.pollReadableAsync([...set.fds, set.wake], (err, ready) => {
      set.polling = false;
      if (!set.active) {
        VfioMsix.release(set);
        return;
      }
      if (err) {
        // A failing poll would fail again at once: stop delivering rather than spin. Not thrown (this
        // runs from koffi's callback: a throw would end the process); the request queues' watchdog
        // finds completions by polling from here on, as for a device that sends no interrupt.
        set.active = false;
        VfioMsix.release(set);
        process.emitWarning(`MSI-X interrupt delivery stopped: poll(2) failed (${err.message}); completions are found by the watchdog's polling from now on`, { code: 'E_INTERRUPT_DELIVERY' });
        return;
      }
      // Only the eventfds poll saw readable are read (one koffi call each, not one per vector).
      const fired = set.fds.map((fd, i) => ready[i] === true && libc.eventfdTake(fd) > 0n);
      if (ready[set.fds.length]) libc.eventfdTake(set.wake);
      this.arm(set); // before the handlers, so a throwing handler does not stop delivery
      fired.forEach((f, vector) => {
        if (f) set.handler(vector);
      });
    });
  }

  private static release(set: VectorSet): void {
    set.unhook();
    for (const fd of [...set.fds, set.wake]) {
      try {
        libc.close(fd);
      } catch {
        // already gone
      }
    }
    set.fds = [];
  }

  disable(): void {
    const set = this.current;
    if (!set) return;
    this.current = null;
    set.active = false;
    try {
      this.device.disableIrqs(PciIrq.MSIX);
    } finally {
      // The fds are closed once the outstanding poll has returned, never under it.
      if (set.polling) libc.eventfdSignal(set.wake);
      else VfioMsix.release(set);
    }
  }
}

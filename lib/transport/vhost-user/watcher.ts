// Watches the eventfds the back-end writes: each started queue's call eventfd (used-buffer
// notifications, vhost-user.rst "VHOST_USER_SET_VRING_CALL"), through lib/sys/eventfd-watch.ts —
// on the main thread's event loop where Node allows it, else by a worker-thread poll(2). The watch
// holds its own duplicates of the fds, so the transport closes its fds whenever it likes after
// stop(). Only call eventfds are watched here (POLLIN); the back-end's hang-up is seen on its
// socket (link.ts), not here.
//
// Why the handler is taken from the set as it is when an fd fires (the reinit stall of issue 10):
// a wait is armed with the set of the moment, but it comes back to the main thread whenever the
// event loop gets to it — after a reset, a reinit and the new session's DRIVER_OK may all have
// happened meanwhile. The handlers of the set it was armed with then belong to the old interrupt
// routing. Running one of them read (cleared) the call eventfd and dropped the notification as
// stale; the new routing never heard of it. With VIRTIO_RING_F_EVENT_IDX (virtio 1.2 §2.7.7,
// used_event) one lost notification is for ever: the driver never moves used_event, so the
// back-end never signals again (subprojects/libvhost-user/libvhost-user.c vring_notify:
// vring_need_event against used_event), and every request after the reinit waited at 0 % CPU.
// The daemon itself was fine. The race was likely on every reinit because libvhost-user writes
// the call eventfd as soon as it gets it (vu_set_vring_call_exec, "in case of I/O hang after
// reconnecting") and again on the first completions, while the poll armed before the reset had
// yet to come back. So the watch reads only the fds of the current set (EventfdWatch.set is called
// on every change), and the handler is asked of the current set when one fires; an fd the set
// no longer has gets its count back, for the next routing to see.

import { VIRTIO_MSI_NO_VECTOR } from '../../spec/index.js';
import { EventfdWatch, type EventfdWaitMode } from '../../sys/eventfd-watch.js';
import * as libc from '../../sys/libc.js';

/** One eventfd to watch and what to do when it fires. */
export interface Watched {
  /** The eventfd (a queue's call eventfd). */
  fd: number;
  /** Called on the main thread when it fired, with the counter's value (already read and cleared). */
  ready(count: bigint): void;
}

export class Watcher {
  private readonly watch: EventfdWatch;
  private stopped = false;

  /**
   * `sources` is asked for the current set at each refresh() and each time an fd fires;
   * `address` names the device in warnings; `mode` overrides the process's eventfdWait() (tests).
   */
  constructor(private readonly sources: () => Watched[], address: string, mode?: EventfdWaitMode) {
    this.watch = new EventfdWatch({
      onFire: (fd, count) => this.fired(fd, count),
      // Not thrown (it happens in an event callback): the request queues' watchdog finds
      // completions by polling, as for a back-end that never signals; the next refresh() tries again.
      onError: (fd, e) => process.emitWarning(`${address}: call eventfd ${fd}: interrupt delivery stopped (${e.message}); completions are found by the watchdog's polling until the interrupt routing changes`,
        { code: 'E_INTERRUPT_DELIVERY' }),
      ...(mode ? { mode } : {}),
    });
  }

  /** The set changed: watch the new one. */
  refresh(): void {
    if (!this.stopped) this.watch.set(this.sources().map((w) => w.fd));
  }

  private fired(fd: number, count: bigint): void {
    // The set as it is now (see the top of this file).
    const w = this.sources().find((x) => x.fd === fd);
    if (w) {
      w.ready(count);
      return;
    }
    // It left the set before refresh() was called: the count goes back for its next watcher.
    try {
      libc.eventfdSignal(fd, count);
    } catch {
      // closed: nobody will watch it again
    }
    this.refresh();
  }

  /** Ends the watch (nothing fires from now on); the transport may close its fds right after. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.watch.close();
  }
}

/**
 * Interrupt vectors over call eventfds, for the vhost transports (vhost-user, vhost-vdpa): with
 * interrupts on, vector 0 is configuration changes and each queue takes the vector it asked for
 * (when below the count enabled); a queue's call eventfd firing runs the handler with its vector.
 * The transport keeps the fds and refreshes its Watcher after enable()/disable().
 */
export class CallVectors {
  private irq: { handler: (vector: number) => void; vectors: number } | null = null;

  /** Enables up to `wanted` vectors (at most `max`); returns how many (0: polling). */
  enable(wanted: number, max: number, handler: (vector: number) => void): number {
    const vectors = Math.max(0, Math.min(Math.floor(wanted), max));
    this.irq = vectors > 0 ? { handler, vectors } : null;
    return vectors;
  }

  /** Back to polling: no vector fires. */
  disable(): void {
    this.irq = null;
  }

  /** `vector` when it is enabled, else VIRTIO_MSI_NO_VECTOR (for a queue's or the configuration's vector). */
  accept(vector: number): number {
    return this.irq && vector !== VIRTIO_MSI_NO_VECTOR && vector < this.irq.vectors ? vector : VIRTIO_MSI_NO_VECTOR;
  }

  /**
   * The watched set: each queue's call eventfd with a vector (none while disabled). Asked for
   * again whenever one fires, so the handlers are always the current routing's (see above).
   */
  watched(queues: Iterable<{ fd: number | undefined; vector: number }>): Watched[] {
    const irq = this.irq;
    if (!irq) return [];
    const w: Watched[] = [];
    for (const { fd, vector } of queues) {
      if (fd === undefined || vector === VIRTIO_MSI_NO_VECTOR) continue;
      w.push({ fd, ready: () => irq.handler(vector) });
    }
    return w;
  }
}

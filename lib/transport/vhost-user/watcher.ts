// One worker-thread poll(2) per transport over the eventfds the back-end writes: each started
// queue's call eventfd (used-buffer notifications, vhost-user.rst "VHOST_USER_SET_VRING_CALL").
// Node has no readiness watcher for an eventfd, so the wait runs on a libuv worker
// (lib/sys/libc.ts pollAsync); like lib/vfio/msix.ts, the fds of one poll are closed only after
// it has returned, and a wake-up eventfd ends a poll early when the set changes.
//
// Why the set is asked for again when a poll returns (the reinit stall of issue 10): a poll is
// armed with the set of the moment, but it returns to the main thread whenever the event loop gets
// to it — after a reset, a reinit and the new session's DRIVER_OK may all have happened meanwhile.
// The handlers of the set it was armed with then belong to the old interrupt routing. Running one
// of them read (cleared) the call eventfd and dropped the notification as stale; the new routing
// never heard of it. With VIRTIO_RING_F_EVENT_IDX (virtio 1.2 §2.7.7, used_event) one lost
// notification is for ever: the driver never moves used_event, so the back-end never signals
// again (subprojects/libvhost-user/libvhost-user.c vring_notify: vring_need_event against
// used_event), and every request after the reinit waited at 0 % CPU. The daemon itself was fine.
// The race was likely on every reinit because libvhost-user writes the call eventfd as soon as it
// gets it (vu_set_vring_call_exec, "in case of I/O hang after reconnecting") and again on the
// first completions, while the poll armed before the reset had yet to come back. So readiness is
// checked, and handlers are taken, from the current set.

import { VIRTIO_MSI_NO_VECTOR } from '../../spec/index.js';
import * as libc from '../../sys/libc.js';
import { POLL, readyNow } from '../../sys/socket.js';

export interface Watched {
  fd: number;
  events: number;
  /** Called on the main thread with the fd's revents. */
  ready(revents: number): void;
}

/** After a failing poll(2) (it would fail again at once), the pause before the next one. */
const RETRY_MS = 10;

export class Watcher {
  private readonly wake = libc.eventfd();
  private readonly unhook = libc.wakeOnExit(this.wake);
  private polling = false;
  private stopped = false;
  private deferred: (() => void)[] = [];
  private retry: NodeJS.Timeout | null = null;

  /** `sources` is asked for the current set each time a poll is armed and each time one returns. */
  constructor(private readonly sources: () => Watched[]) {}

  /** The set changed: re-arm with the new one. */
  refresh(): void {
    if (this.stopped) return;
    if (this.polling) libc.eventfdSignal(this.wake);
    else if (!this.retry) this.arm();
  }

  /** Runs `close` once no poll is out on the fds it closes (now, or when the current poll returns). */
  whenIdle(close: () => void): void {
    if (!this.polling) close();
    else {
      this.deferred.push(close);
      libc.eventfdSignal(this.wake);
    }
  }

  /** Arms a poll over the current set; with nothing to watch, none (no worker thread is held). */
  private arm(): void {
    if (this.polling) return;
    const watched = this.sources();
    if (watched.length === 0) return;
    const entries = [{ fd: this.wake, events: 0x1 }, ...watched.map((w) => ({ fd: w.fd, events: w.events }))];
    this.polling = true;
    libc.pollAsync(entries, (err) => this.returned(err));
  }

  private returned(err: Error | null): void {
    this.polling = false;
    libc.eventfdTake(this.wake);
    const deferred = this.deferred;
    this.deferred = [];
    deferred.forEach((f) => f());
    if (this.stopped) {
      this.unhook();
      libc.close(this.wake);
      return;
    }
    // The set as it is now (see the top of this file), every fd of it open.
    const current = this.sources();
    const revents = err ? [] : readyNow(current);
    try {
      current.forEach((w, i) => {
        if (revents[i]) w.ready(revents[i]!);
      });
    } finally {
      // Re-armed even when a handler throws, so delivery does not end; a handler that changed the
      // set called refresh(), which armed nothing while no poll was out: the set is asked for here.
      if (!err) this.arm();
      else this.retry = setTimeout(() => {
        this.retry = null;
        if (!this.stopped) this.arm();
      }, RETRY_MS);
    }
  }

  /** Ends the watch; fds handed to whenIdle are closed when the outstanding poll returns. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.polling) libc.eventfdSignal(this.wake);
    else {
      this.unhook();
      libc.close(this.wake);
    }
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
   * again whenever a poll returns, so the handlers are always the current routing's (see above).
   */
  watched(queues: Iterable<{ fd: number | undefined; vector: number }>): Watched[] {
    const irq = this.irq;
    if (!irq) return [];
    const w: Watched[] = [];
    for (const { fd, vector } of queues) {
      if (fd === undefined || vector === VIRTIO_MSI_NO_VECTOR) continue;
      w.push({ fd, events: POLL.IN, ready: () => {
        libc.eventfdTake(fd);
        irq.handler(vector);
      } });
    }
    return w;
  }
}

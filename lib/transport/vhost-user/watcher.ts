// One worker-thread poll(2) per transport over what the front-end waits on: each queue's call
// eventfd (used-buffer notifications, vhost-user.rst VHOST_USER_SET_VRING_CALL) and the socket,
// watched for POLLRDHUP/POLLHUP only, so a back-end that dies is noticed at once (not on the next
// request). Like lib/vfio/msix.ts: the fds of one poll are closed only after it has returned, and
// a wake-up eventfd ends a poll early when the set changes.

import * as libc from '../../sys/libc.js';
import { pollSync } from '../../sys/socket.js';

export interface Watched {
  fd: number;
  events: number;
  /** Called on the main thread with the fd's revents. */
  ready(revents: number): void;
}

export class Watcher {
  private readonly wake = libc.eventfd();
  private readonly unhook = libc.wakeOnExit(this.wake);
  private polling = false;
  private stopped = false;
  private deferred: (() => void)[] = [];

  /** `sources` is asked for the current set each time a poll is armed. */
  constructor(private readonly sources: () => Watched[]) {}

  /** The set changed: re-arm with the new one. */
  refresh(): void {
    if (this.stopped) return;
    if (this.polling) libc.eventfdSignal(this.wake);
    else this.arm();
  }

  /** Runs `close` once no poll is out on the fds it closes (now, or when the current poll returns). */
  whenIdle(close: () => void): void {
    if (!this.polling) close();
    else {
      this.deferred.push(close);
      libc.eventfdSignal(this.wake);
    }
  }

  private arm(): void {
    const watched = this.sources();
    const entries = [{ fd: this.wake, events: 0x1 }, ...watched.map((w) => ({ fd: w.fd, events: w.events }))];
    this.polling = true;
    libc.pollAsync(entries, (err) => {
      this.polling = false;
      // Which fds are ready: asked again on this thread, while every one of them is still open.
      const revents = err ? entries.map(() => 0) : pollSync(entries, 0);
      libc.eventfdTake(this.wake);
      const deferred = this.deferred;
      this.deferred = [];
      if (this.stopped) {
        deferred.forEach((f) => f());
        this.unhook();
        libc.close(this.wake);
        return;
      }
      // Re-armed before the handlers run (as lib/vfio/msix.ts does), so a throwing handler does not
      // end delivery; a handler that changes the set calls refresh(), which wakes the new poll.
      if (!err) this.arm();
      deferred.forEach((f) => f());
      watched.forEach((w, i) => {
        if (revents[i + 1]) w.ready(revents[i + 1]!);
      });
    });
  }

  /** Ends the watch; fds handed to whenIdle are closed when the outstanding poll returns. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.polling) libc.eventfdSignal(this.wake);
    else {
      this.unhook();
      libc.close(this.wake);
    }
  }
}

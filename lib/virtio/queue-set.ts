// QueueSet: a driver's queues on one VirtioDevice, each as a RequestQueue fed by its interrupt
// vector or by polling, and the stop / reinit / resume choreography across all of them:
//   stop:   pause every RequestQueue (new requests wait), stop the device, collect what completed
//   reinit: re-initialise the device (or a target) from the snapshot, notify every queue, unpause
//   resume: leave the stop without a reset (SUSPEND, quiesce), notify, unpause

import type { VirtioDevice, QueueOptions, ReinitOptions, StopOptions } from './device.js';
import { VirtqueueError } from './errors.js';
import { RequestQueue, type RequestToken } from './requests.js';
import type { DeviceSnapshot, Mechanism } from './snapshot.js';

export interface QueueSetOptions extends QueueOptions {
  /** False for queues whose chains wait on outside events (net rx): quiesce reclaims them instead of draining. */
  drains?: boolean;
}

export class QueueSet {
  private readonly queues = new Map<number, RequestQueue<unknown>>();

  constructor(readonly device: VirtioDevice) {
    // A device that vanished (vhost-user back-end exited) will never return what is in flight:
    // reject every pending and waiting request at once with the transport's error.
    device.onLost((e) => {
      for (const [index, rq] of this.queues) rq.fail(new VirtqueueError(e.code, index, e.message, e.hint, true));
    });
  }

  /** Sets up queue `index` on the device (before DRIVER_OK) and returns its RequestQueue. */
  add<T>(index: number, options: QueueSetOptions = {}): RequestQueue<T> {
    const vq = this.device.setupQueue<RequestToken<T>>(index, options);
    const rq = new RequestQueue<T>(vq);
    this.device.setDrainPolicy(index, options.drains ?? true);
    this.queues.set(index, rq as RequestQueue<unknown>);
    this.device.onQueueInterrupt(index, () => rq.processUsed());
    this.chooseDelivery(index, rq as RequestQueue<unknown>);
    return rq;
  }

  get(index: number): RequestQueue<unknown> | undefined {
    return this.queues.get(index);
  }

  /** Interrupts where the queue has a vector, else polling on every turn of the event loop. */
  private chooseDelivery(index: number, rq: RequestQueue<unknown>): void {
    if (this.device.queueHasInterrupts(index)) {
      rq.stopPolling();
      rq.vq.enableInterrupts();
    } else {
      rq.vq.disableInterrupts();
      rq.startPolling();
    }
  }

  async stop(options: StopOptions = {}): Promise<Mechanism> {
    for (const rq of this.queues.values()) rq.pause();
    try {
      const mechanism = await this.device.stop(options);
      for (const rq of this.queues.values()) rq.processUsed();
      return mechanism;
    } catch (e) {
      if (this.device.state === 'live') for (const rq of this.queues.values()) rq.resume();
      throw e;
    }
  }

  async reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<void> {
    const orphans = await this.device.reinit(snapshot, options);
    for (const [index, tokens] of orphans) this.queues.get(index)?.repost(tokens as RequestToken<unknown>[]);
    this.restart();
  }

  async resume(): Promise<void> {
    await this.device.resume();
    this.restart();
  }

  /** After the device is live again: re-pick interrupt or polling delivery, notify, unpause. */
  private restart(): void {
    for (const [index, rq] of this.queues) {
      this.chooseDelivery(index, rq);
      this.device.notifyQueue(index);
      rq.resume();
      rq.processUsed();
    }
  }

  close(): void {
    for (const rq of this.queues.values()) rq.stopPolling();
  }
}

// Interrupt routing of a VirtioDevice (virtio 1.2 §4.1.5.1.2 for MSI-X): one vector for
// configuration changes (vector 0) and one per queue when the platform gives enough; with fewer,
// queues share vector 1 (or vector 0 with a single vector); with none, or a queue whose vector the
// device refused, the queue's user polls. An interrupt on a vector runs the used listener of every
// queue the device accepted that vector for; vector 0 also announces a configuration change, and
// with it DEVICE_NEEDS_RESET (§2.1.2, §4.1.4.5).

import { VIRTIO_MSI_NO_VECTOR } from '../spec/index.js';
import { DeviceError } from '../errors.js';
import type { VirtioTransport } from '../transport/types.js';
import { Listeners } from '../util/listeners.js';

/** How a device asks for interrupts: 'auto' (MSI-X when given, else polling), 'msix' (required), 'poll'. */
export type InterruptPreference = 'auto' | 'msix' | 'poll';

/** The vectors a device holds on its current transport, and who listens to configuration changes. */
export class InterruptRouter {
  /** Vectors the platform gave (0: polling). */
  private vectors = 0;
  private readonly configListeners = new Listeners<[]>('configuration change');

  /**
   * @param preference see InterruptPreference
   * @param dispatch called with each vector that fired (VirtioDevice runs the queues' listeners)
   */
  constructor(readonly preference: InterruptPreference, private readonly dispatch: (vector: number) => void) {}

  /** 'msix' when interrupts are delivered, 'poll' when the driver must poll used rings. */
  get mode(): 'msix' | 'poll' {
    return this.vectors > 0 ? 'msix' : 'poll';
  }

  /**
   * Routes on `t` (none held there): asks for one vector for configuration plus one per queue;
   * vector 0 carries configuration changes. Throws E_CAP_MISSING when MSI-X is required and none
   * could be enabled.
   */
  route(t: VirtioTransport): void {
    this.vectors = 0;
    if (this.preference === 'poll') return;
    this.vectors = t.enableInterrupts(1 + t.numQueues, (vector) => this.dispatch(vector));
    if (this.vectors > 0 && t.setConfigVector(0) === VIRTIO_MSI_NO_VECTOR) {
      t.disableInterrupts();
      this.vectors = 0;
    }
    if (this.vectors === 0 && this.preference === 'msix') {
      throw new DeviceError('E_CAP_MISSING', `${t.address}: MSI-X interrupts were asked for but none could be enabled`,
        'use interrupts: "poll" or "auto"');
    }
  }

  /** Forgets the vectors (the transport released them, or was reset). */
  forget(): void {
    this.vectors = 0;
  }

  /** The vector to ask for queue `index`: its own when there are enough, else 1 (or 0); NO_VECTOR when polling. */
  vectorFor(index: number): number {
    const v = this.vectors;
    return 1 + index < v ? 1 + index : v > 1 ? 1 : v === 1 ? 0 : VIRTIO_MSI_NO_VECTOR;
  }

  /** Called on each configuration change (vector 0). Returns an unsubscribe. */
  onConfigChange(listener: () => void): () => void {
    return this.configListeners.add(listener);
  }

  /** Runs the configuration-change listeners. */
  configChanged(): void {
    this.configListeners.emit();
  }
}

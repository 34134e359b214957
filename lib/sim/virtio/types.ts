// The shapes the generic virtio device (device.ts) and its queue engine (engine.ts) share: how
// requests complete, what STOP does with them, the statistics, and the PCI side the device
// signals through. Kept apart so engine.ts need not import device.ts (which builds the engine).

/** When fetched requests are completed: at once, when the test says so, or after a delay. */
export type Completion = 'immediate' | 'manual' | {
  /** Delay in milliseconds (≥ 0) from fetching a request to completing it. */
  latencyMs: number;
};

/**
 * What STOP does with requests fetched and not yet completed: complete them before showing STOP
 * ('drain'), or keep them, unfinished, for DEVICE_STATE SAVE ('hold'). SUSPEND always drains.
 */
export type StopMode = 'drain' | 'hold';

/** What the device counted since it was made (never reset): notifications, interrupts, completions. */
export interface SimStats {
  /** Available-buffer notifications received, per queue. */
  notifications: number[];
  /** Used-buffer notifications sent (MSI-X message or ISR bit), per queue. */
  interrupts: number[];
  /** Used elements written for requests, per queue. */
  completed: number[];
  /** Configuration change notifications sent (virtio 1.2 §4.1.5.3), the device's own and fault-induced ones. */
  configInterrupts: number;
  /** Interrupts sent for nothing (fault interrupt-storm). */
  spuriousInterrupts: number;
}

/** How the device reaches the PCI side: interrupts and the command register. */
export interface PciSide {
  /** MSI-X is enabled: interrupts are vectors and the ISR queue bit is not used (§4.1.4.5). */
  msixActive(): boolean;
  signal(vector: number): void;
  /** Bus Master Enable: without it the device cannot touch driver memory. */
  busMaster(): boolean;
}

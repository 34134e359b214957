// The wait between two looks at a device (a status register, a used index): the next turn of the
// event loop for the first looks — a device usually answers within microseconds — then timers
// growing to 10 ms, so a long bounded wait does not spin a core.

/**
 * Waits before the next look at a device: `setImmediate` for the first 32 looks, then a timer of
 * `spins − 31` ms, at most 10 ms. `spins` counts the looks so far (0 for the first).
 */
export function backoff(spins: number): Promise<void> {
  return new Promise((resolve) => (spins < 32 ? setImmediate(resolve) : setTimeout(resolve, Math.min(10, spins - 31))));
}

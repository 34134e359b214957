// The chains a queue has fetched and not yet returned as used, oldest first (QueueDeviceState.inFlight).
//
// A device completes them nearly always in the order it fetched them, one at a time, and each one
// must leave the list before it is served: a model's serve() can call back into the device (a
// console port's data listener calling completeNow()), and what it re-enters must not see a chain
// being served as still in flight. An Array's shift() moves every later element to do that (V8
// copies arrays of fewer than 100 elements, each move a write-barriered store: about 500 moves for
// a batch of 32), so the list is a ring of slots with a head index: taking the oldest is O(1) and
// moves nothing; taking one from the middle (a test completing out of order) closes the gap.

/** A first-in first-out list of chains: push at the end, take any one off (the oldest cheaply). */
export class InFlight<T extends object> {
  /** Slots, a power of two long; the chains are at head, head+1, … (modulo the length), count of them. */
  private slots: (T | undefined)[] = new Array<T | undefined>(8).fill(undefined);
  private head = 0;
  private count = 0;

  /** How many are in flight. */
  get length(): number {
    return this.count;
  }

  /** Adds `item` as the newest. */
  push(item: T): void {
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) & (this.slots.length - 1)] = item;
    this.count++;
  }

  /** Takes `item` off (the first occurrence from the oldest); false when it is not in flight. */
  remove(item: T): boolean {
    const mask = this.slots.length - 1;
    if (this.count > 0 && this.slots[this.head] === item) {
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) & mask;
      this.count--;
      return true;
    }
    for (let i = 1; i < this.count; i++) {
      if (this.slots[(this.head + i) & mask] !== item) continue;
      // Close the gap: every later one moves one slot towards the head.
      for (let j = i; j < this.count - 1; j++) this.slots[(this.head + j) & mask] = this.slots[(this.head + j + 1) & mask];
      this.slots[(this.head + this.count - 1) & mask] = undefined;
      this.count--;
      return true;
    }
    return false;
  }

  /** The chains in flight, oldest first, as a new array (the list may change while it is used). */
  toArray(): T[] {
    const out = new Array<T>(this.count);
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.count; i++) out[i] = this.slots[(this.head + i) & mask]!;
    return out;
  }

  private grow(): void {
    const items = this.toArray();
    this.slots = new Array<T | undefined>(this.slots.length * 2).fill(undefined);
    for (let i = 0; i < items.length; i++) this.slots[i] = items[i];
    this.head = 0;
  }
}

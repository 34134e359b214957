// The packed twin of net-rx-put-back: the reference device's receive queue after a put-back, driven
// by a hand-written driver that decides whether to notify exactly as virtio 1.2 §2.8.10 / §2.8.14
// say and no more (postStrict, test/support/sim-driver.ts) — without the guard of uvirtio's own
// driver (lib/virtio/queue/packed.ts kick), which also notifies when the device's event descriptor
// lies where the driver cannot reach it.
//
// With MRG_RXBUF a frame that needs more receive buffers than are available makes the model give
// back the buffers it took (the device's position moves back to the first of them). The device must
// then ask to hear of the driver's next posting: in the device event suppression structure either
// ENABLE, or DESC with off_wrap naming the descriptor the driver makes available next (its slot and
// the Driver Ring Wrap Counter there). Before the fix the packed ring published DESC at the device's
// own position, a descriptor the driver had already made available: its next postings never made
// that descriptor available again, so a strict driver never notified and the frame waited for ever.
// The split case (avail_event, §2.7.10) runs the same way, to keep the two layouts twins.

import t from 'tap';
import type { Test } from 'tap';
import { createSimDevice, type SimNetDevice } from '../../lib/sim/index.js';
import { Feature, NET_HDR_LEN, NetFeature, NetHdr, PackedEventFlag, Status, bit } from '../../lib/spec/index.js';
import { HeapDmaAllocator, type DmaRegion } from '../../lib/mem/dma.js';
import {
  PackedRing, SimDriver, SplitRing, initialState, layoutFeatures, newRing, postStrict, settle, type Layout,
} from '../support/sim-driver.js';

const RX = 0;
const TX = 1;
const RING_SIZE = 8;
const RX_BUFFER = 256;

/** A net driver of two queues (receiveq1, transmitq1) that notifies only when the device asks for it. */
class StrictNetDriver {
  sim: SimNetDevice;
  d: SimDriver;
  readonly rx: PackedRing | SplitRing;
  readonly tx: PackedRing | SplitRing;
  private readonly features: bigint;
  /** Receive buffers posted and not yet used, by id. */
  private readonly posted = new Map<number, DmaRegion>();

  /** `ringState`: with VIRTIO_F_RING_STATE (the proposal), so the queues can be moved to another device (reinitOn). */
  constructor(readonly layout: Layout, ringState = false) {
    // The driver's memory outlives a device it moves from, as guest memory does.
    this.sim = createSimDevice({ type: 'net', mergeable: true, state: { ringState }, dma: new HeapDmaAllocator() });
    this.features = layoutFeatures(layout, bit(Feature.EVENT_IDX) | bit(NetFeature.MRG_RXBUF) | (ringState ? bit(Feature.RING_STATE) : 0n));
    this.d = this.bringUp(this.sim);
    this.rx = newRing(this.d, layout, RING_SIZE);
    this.tx = newRing(this.d, layout, RING_SIZE);
    const state = ringState ? initialState(layout) : undefined;
    this.d.setupQueue(RX, this.rx, state);
    this.d.setupQueue(TX, this.tx, state);
    this.d.driverOk();
  }

  /**
   * A reinit from a saved state: STOP this device, read each queue's state, close it, and bring the
   * same rings (buffers still posted) up on `target` from those states.
   */
  async reinitOn(target: SimNetDevice): Promise<void> {
    this.d.addStatus(Status.STOP);
    await this.d.waitStatus((s) => (s & Status.STOP) !== 0);
    const states = [this.d.readVqState(RX), this.d.readVqState(TX)];
    this.sim.fn.close();
    this.sim = target;
    this.d = this.bringUp(target);
    this.d.setupQueue(RX, this.rx, states[0]);
    this.d.setupQueue(TX, this.tx, states[1]);
    this.d.driverOk();
  }

  private bringUp(sim: SimNetDevice): SimDriver {
    const d = new SimDriver(sim);
    d.start(this.features);
    d.setConfigVector(0);
    return d;
  }

  /** Makes `count` receive buffers available and notifies if the device asks for it; returns whether it did. */
  post(count: number): boolean {
    const buffers = Array.from({ length: count }, () => this.d.alloc(RX_BUFFER));
    const { ids, notified } = postStrict(this.d, RX, this.rx, buffers.map((b) => [{ addr: b.iova, len: RX_BUFFER, write: true }]));
    ids.forEach((id, i) => this.posted.set(id, buffers[i]!));
    return notified;
  }

  /** Transmits `frame` behind a zero header (looped back to the receive queue). */
  send(frame: Uint8Array): void {
    const chain = new Uint8Array(NET_HDR_LEN + frame.length);
    chain.set(frame, NET_HDR_LEN);
    postStrict(this.d, TX, this.tx, [[{ addr: this.d.buffer(chain).iova, len: chain.length }]]);
  }

  /** The frames in the used receive buffers, joined by their header's num_buffers (§5.1.6.4). */
  received(): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let parts: Uint8Array[] = [];
    let left = 0;
    for (const used of this.rx.takeUsed()) {
      const bytes = this.posted.get(used.id)!.bytes.slice(0, used.len);
      this.posted.delete(used.id);
      if (left === 0) left = new DataView(bytes.buffer).getUint16(NetHdr.NUM_BUFFERS, true);
      parts.push(bytes);
      if (--left === 0) {
        frames.push(new Uint8Array(Buffer.concat(parts).subarray(NET_HDR_LEN)));
        parts = [];
      }
    }
    return frames;
  }

  /** What the device event structure / avail_event asks for, and what the driver makes available next. */
  wish(): { asks: string; next: string } {
    if (this.rx instanceof PackedRing) {
      const flags = this.rx.deviceEventFlags;
      const asks = flags === PackedEventFlag.DESC ? `DESC off_wrap 0x${this.rx.deviceEventOffWrap.toString(16)}` : `flags ${flags}`;
      return { asks, next: `DESC off_wrap 0x${this.rx.nextAvailOffWrap.toString(16)}` };
    }
    return { asks: `avail_event ${this.rx.availEvent}`, next: `avail_event ${this.rx.availIndex}` };
  }

  /** After a put-back: ENABLE, or an event at exactly the driver's next posting. */
  asksForNextPosting(): boolean {
    if (this.rx instanceof PackedRing && this.rx.deviceEventFlags === PackedEventFlag.ENABLE) return true;
    const { asks, next } = this.wish();
    return asks === next;
  }
}

function frame(seq: number, len: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (seq * 31 + i * 7) & 0xff);
}

/** A frame of `len` bytes waits for more buffers than `net` has posted: the device takes them and puts them back. */
async function putBack(t: Test, net: StrictNetDriver, len: number): Promise<Uint8Array> {
  const f = frame(len, len);
  net.send(f);
  await settle(5);
  t.same(net.received(), [], 'the frame waits: too few receive buffers for it');
  t.equal(net.sim.dropped, 0, 'nothing dropped');
  const { asks, next } = net.wish();
  t.ok(net.asksForNextPosting(), `the device asks for the driver's next posting (asks ${asks}; next posting ${next})`);
  return f;
}

for (const layout of ['packed', 'split'] as const) {
  t.test(`${layout}, EVENT_IDX, MRG_RXBUF, strict driver: after a put-back the next posting notifies and the frame arrives`, async (t) => {
    const net = new StrictNetDriver(layout);
    t.teardown(() => net.sim.fn.close());
    net.post(2);
    await settle();
    // 1000 bytes behind the 12-byte header need four 256-byte buffers; two are there.
    const f = await putBack(t, net, 1000);
    t.ok(net.post(2), 'posting two more buffers notifies the device');
    await settle(5);
    t.same(net.received(), [f], 'the frame arrives, over four buffers');
    t.same(net.sim.violations, [], 'no driver rule broken');
  });

  t.test(`${layout}, EVENT_IDX, MRG_RXBUF, strict driver: a put-back whose next posting is in the driver's next lap`, async (t) => {
    const net = new StrictNetDriver(layout);
    t.teardown(() => net.sim.fn.close());
    // Six one-buffer frames move both sides to slot 6 of the first lap.
    net.post(6);
    await settle();
    const small = Array.from({ length: 6 }, (_, i) => frame(i, 60));
    for (const f of small) net.send(f);
    await settle(5);
    t.same(net.received(), small, 'six small frames, one buffer each');
    // Slots 6, 7 and then 0, 1 of the next lap (Driver Ring Wrap Counter 0 there): the driver's next
    // posting is slot 2 with wrap counter 0, the device's position slot 6 with wrap counter 1.
    net.post(4);
    await settle();
    const f = await putBack(t, net, 1200);
    t.ok(net.post(1), 'posting the fifth buffer notifies the device');
    await settle(5);
    t.same(net.received(), [f], 'the frame arrives, over five buffers');
    t.same(net.sim.violations, [], 'no driver rule broken');
  });

  t.test(`${layout}, EVENT_IDX, MRG_RXBUF, RING_STATE, strict driver: a put-back on a device reinitialised from a saved state`, async (t) => {
    const net = new StrictNetDriver(layout, true);
    t.teardown(() => net.sim.fn.close());
    // Five frames on the first device: both sides at slot 5 when it stops; two buffers still posted.
    net.post(7);
    await settle();
    const small = Array.from({ length: 5 }, (_, i) => frame(i, 60));
    for (const f of small) net.send(f);
    await settle(5);
    t.same(net.received(), small, 'five small frames on the first device');
    await net.reinitOn(createSimDevice({ type: 'net', mergeable: true, state: { ringState: true }, dma: net.sim.dma }));
    await settle();
    t.same(net.sim.violations, [], 'the second device took the saved state');
    // Four buffers needed, two posted (slots 5, 6): the second device starts from the saved position.
    const f = await putBack(t, net, 1000);
    t.ok(net.post(2), 'posting two more buffers notifies the second device');
    await settle(5);
    t.same(net.received(), [f], 'the frame arrives, over four buffers');
    t.same(net.sim.violations, [], 'no driver rule broken');
  });
}

// One fuzz run on the reference net device, in loopback (run.ts has the steps every device type
// shares). Its requests: frames sent, each numbered and checksummed; whatever comes back on the
// receive queue must be a frame that was sent, intact, and seen once. Frames may be lost (a reset
// drops what the device held: that is network semantics); they may never be duplicated or corrupt.
// One exception, a limit of the split layout that no driver can see past: a device that skips a
// used slot (used-index-jump) leaves last lap's element there, and when that element names a
// receive buffer the device has already filled but not yet returned, the driver takes the buffer
// with the stale element's length (§2.7.8: the length is the device's word; virtio_net_hdr carries
// none). Then every byte that belongs to the frame must still be right — only the length may be
// off — and the run counts it (staleLengthFrames); anything else is corruption.
// At the end, with the device live (and its rings restarted when a fault was injected), one last
// frame must make the round trip.

import { NetDriver, type ReceivedFrame } from '../../drivers/net/index.js';
import { fnv1a } from '../../cli/rehearsal/random.js';
import { createSimDevice, type SimNetDevice } from '../../lib/sim/index.js';
import type { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { FuzzFailure } from './ledger.js';
import { FuzzRun, type RunConfig } from './run.js';

const MAGIC = 0x55564e46; // "UVNF"
const HEAD = 16;
/** Bound on the last frame's round trip once the device is quiet and live. */
const ROUND_TRIP_MS = 1000;

export class NetRun extends FuzzRun<NetDriver> {
  private nextSeq = 1;
  private readonly seen = new Set<number>();
  private readonly run = 1 + Math.floor(Math.random() * 0xfffffff);
  /** Frames that came back intact but with a stale length (see the header); counted in the stats. */
  staleLengthFrames = 0;

  constructor(config: RunConfig, rng: () => number) {
    const device = {
      type: 'net' as const, queueMaxSize: config.queueSize,
      offer: { packed: config.layout === 'packed' },
      completion: config.latency > 0 ? { latencyMs: config.latency } : 'immediate' as const,
      state: { ringState: config.state === 'ring-state', suspend: config.state === 'suspend' },
      mode: config.mode,
    };
    const source: SimNetDevice = createSimDevice(device);
    super(config, rng, source, createSimDevice({ ...device, dma: source.dma }));
  }

  protected async openDriver(transport: VirtioPciTransport): Promise<NetDriver> {
    const net = await NetDriver.open(transport, { ...this.openOptions, rxBuffers: 8 });
    net.onFrame((f) => this.received(f));
    return net;
  }

  protected readConfig(): void {
    if (!this.driver.linkUp) throw new FuzzFailure('the link reads down');
  }

  private frame(seq: number): Uint8Array {
    const f = new Uint8Array(60 + Math.floor(this.rng() * 200));
    for (let i = HEAD; i < f.length; i++) f[i] = (seq * 13 + i) & 0xff;
    const v = new DataView(f.buffer);
    v.setUint32(0, MAGIC, true);
    v.setUint32(4, seq, true);
    v.setUint32(8, this.run, true);
    v.setUint32(12, fnv1a(f.subarray(HEAD)), true);
    return f;
  }

  private received(f: ReceivedFrame): void {
    try {
      const v = new DataView(f.frame.buffer, f.frame.byteOffset, f.frame.length);
      if (f.frame.length < HEAD || v.getUint32(0, true) !== MAGIC || v.getUint32(8, true) !== this.run) throw new FuzzFailure(`a frame that was never sent came back (${f.frame.length} bytes)`);
      const seq = v.getUint32(4, true);
      if (v.getUint32(12, true) !== fnv1a(f.frame.subarray(HEAD))) {
        if (!this.staleLengthPossible() || !this.intactButForLength(f.frame, seq)) throw new FuzzFailure(`frame ${seq} came back corrupt`);
        this.staleLengthFrames++;
      }
      if (seq >= this.nextSeq) throw new FuzzFailure(`frame ${seq} came back before it was sent`);
      if (this.seen.has(seq)) throw new FuzzFailure(`frame ${seq} came back twice`);
      this.seen.add(seq);
    } catch (e) {
      this.ledger.fail(e);
    }
  }

  /** Whether a stale used element can have reached the driver: a skipped used slot on a split ring. */
  private staleLengthPossible(): boolean {
    return this.config.layout === 'split' && this.faults.some((f) => f.kind === 'used-index-jump');
  }

  /**
   * Whether `frame` is frame `seq` with only its length wrong: every payload byte up to the shorter
   * of the two lengths is the one sent (the payload pattern is a function of seq and offset), and
   * some length ≤ what came back gives the checksum that was sent.
   */
  private intactButForLength(frame: Uint8Array, seq: number): boolean {
    const sent = new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(12, true);
    let end = HEAD;
    while (end < frame.length && frame[end] === ((seq * 13 + end) & 0xff)) end++;
    // Too long: the sent frame is a prefix that matches its checksum. Too short: all of it matched.
    for (let len = end; len >= HEAD + 44; len--) if (fnv1a(frame.subarray(HEAD, len)) === sent) return true;
    return end === frame.length;
  }

  protected issue(): void {
    const seq = this.nextSeq++;
    this.ledger.track(`send ${seq}`, this.driver.send(this.frame(seq)), {
      rejected: (e) => this.expectCode(`send ${seq}`, e, [], false),
    });
  }

  protected async verify(): Promise<void> {
    const last = this.driver.lastMalformed;
    if (last) this.expectCode('a receive buffer', last);
    // A device that wrote bad used descriptors and then lapped the driver before it looked (no
    // interrupt) left a ring no driver can read: after any fault, rings start afresh first.
    if (this.faults.length > 0 && !(await this.freshRings())) return;
    const seq = this.nextSeq++;
    try {
      await this.driver.send(this.frame(seq));
    } catch (e) {
      this.expectCode('the last frame', e);
      return;
    }
    const deadline = performance.now() + ROUND_TRIP_MS;
    while (!this.seen.has(seq)) {
      if (this.driver.device.phase !== 'live') return;
      if (performance.now() > deadline) throw new FuzzFailure(`the last frame (${seq}) did not come back within ${ROUND_TRIP_MS} ms: the receive path stalled`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  protected extraExecutions(): number {
    return 1; // the last frame
  }
}

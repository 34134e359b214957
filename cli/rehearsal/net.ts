// The net rehearsal workload: sequence-numbered, checksummed frames sent on one NIC and received
// back (the reference device loops them back). Every frame whose send completed must arrive
// exactly once with the right contents:
//   lost        sent (completed) but never received
//   duplicated  received more than once
//   corrupted   bad checksum, or a sequence number never sent

import type { NetDriver, ReceivedFrame } from '../../drivers/net/index.js';
import { fnv1a, randomInt, type Random } from './random.js';
import { DriverWorkload, type Verdict, type Workload } from './workload.js';

const ETH_HEADER = 14;
const PAYLOAD_HEADER = 12; // le32 seq, le32 length, le32 checksum

function frameFor(seq: number, length: number, mac: Uint8Array): Uint8Array {
  const f = new Uint8Array(length);
  f.set(mac, 0); // destination: ourselves
  f.set(mac, 6);
  f[12] = 0x88; f[13] = 0xb5; // local experimental EtherType
  const body = f.subarray(ETH_HEADER + PAYLOAD_HEADER);
  for (let i = 0; i < body.length; i++) body[i] = (seq * 13 + i) & 0xff;
  const v = new DataView(f.buffer);
  v.setUint32(ETH_HEADER, seq, true);
  v.setUint32(ETH_HEADER + 4, length, true);
  v.setUint32(ETH_HEADER + 8, fnv1a(body), true);
  return f;
}

export class NetWorkload extends DriverWorkload implements Workload {
  readonly kind = 'net';
  submitted = 0;
  completed = 0;
  /** verify() only listens for frames already sent. */
  readonly verifyRequests = 0;
  readonly problems: Verdict = { lost: 0, duplicated: 0, corrupted: 0 };
  private nextSeq = 0;
  private readonly sent = new Set<number>();
  private readonly received = new Map<number, number>();

  constructor(private readonly net: NetDriver, private readonly rng: Random) {
    super(net);
    net.onFrame((f) => this.onFrame(f));
  }

  private onFrame({ frame }: ReceivedFrame): void {
    if (frame.length < ETH_HEADER + PAYLOAD_HEADER) {
      this.problems.corrupted++;
      return;
    }
    const v = new DataView(frame.buffer, frame.byteOffset, frame.length);
    const seq = v.getUint32(ETH_HEADER, true);
    const ok = v.getUint32(ETH_HEADER + 4, true) === frame.length && v.getUint32(ETH_HEADER + 8, true) === fnv1a(frame.subarray(ETH_HEADER + PAYLOAD_HEADER));
    if (!ok || seq >= this.nextSeq) {
      this.problems.corrupted++;
      return;
    }
    const n = (this.received.get(seq) ?? 0) + 1;
    this.received.set(seq, n);
    if (n > 1) this.problems.duplicated++;
  }

  async issue(): Promise<void> {
    const seq = this.nextSeq++;
    this.submitted++;
    await this.net.send(frameFor(seq, randomInt(this.rng, 64, 1514), this.net.mac));
    this.sent.add(seq);
    this.completed++;
  }

  async verify(): Promise<Verdict> {
    // Frames loop back asynchronously: give the last ones a bounded moment to arrive.
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && [...this.sent].some((s) => !this.received.has(s))) await new Promise((r) => setTimeout(r, 5));
    const lost = [...this.sent].filter((s) => !this.received.has(s)).length;
    return { ...this.problems, lost: this.problems.lost + lost };
  }
}

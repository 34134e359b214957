// Breaker 29 (FAILS at 35ae123): NetDriver.send checks the frame (plainBytes, then its length:
// 1 to maxFrame) and only then reads the header's fields (writeNetHeader: h.flags, h.gsoType, …).
// A header whose getter transfers or shrinks the frame's ArrayBuffer in between makes
// `buf.bytes.set(bytes, NET_HDR_LEN)` throw a raw TypeError ("Cannot perform
// %TypedArray%.prototype.set on a detached ArrayBuffer"): send() rejects untyped, not with a
// UvirtioError (README: errors carry stable codes). The blk driver refuses the same case with
// E_INVALID_ARGUMENT (RequestRunner's memoryGone). What should happen: the header read into plain
// values before the frame is checked (or the copy checked after), and the call rejected with
// E_INVALID_ARGUMENT (or E_FRAME_TOO_LARGE for the empty frame); nothing sent, the NIC usable.

import t from 'tap';
import { joinedNics, seqFrame, until } from '../support/nics.js';

const cases: Record<string, (f: Uint8Array) => Record<string, unknown>> = {
  'transfers the frame\'s buffer': (f) => ({ get flags() { structuredClone(f.buffer, { transfer: [f.buffer as ArrayBuffer] }); return 0; } }),
  'shrinks the frame\'s resizable buffer': (f) => ({ get flags() { (f.buffer as ArrayBuffer & { resize(n: number): void }).resize(14); return 0; } }),
};

for (const [name, header] of Object.entries(cases)) {
  t.test(`a header getter that ${name} after the frame was checked: send() rejects typed`, async (t) => {
    const { nb, seen } = await joinedNics(t);
    const buf = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(64, { maxByteLength: 64 });
    const f = new Uint8Array(buf);
    f.set(seqFrame(0xa, 1));
    let err: unknown;
    try { await nb.send(f, header(f)); } catch (e) { err = e; }
    t.ok(err, 'send() rejects');
    t.match((err as { code?: unknown })?.code, /^E_(INVALID_ARGUMENT|FRAME_TOO_LARGE)$/, `with a typed error (got ${String(err)})`);
    await nb.send(seqFrame(0xa, 2));
    await until(() => seen.includes(2));
    t.same(seen, [2], 'nothing of the refused frame was sent; the NIC still sends');
  });
}

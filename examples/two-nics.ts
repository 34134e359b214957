// Frames between two NICs: A sends to B and B answers, each frame checked on arrival.
//
//   node dist/examples/two-nics.js [ADDRESS_A ADDRESS_B] [FRAMES]
//     default: two reference NICs whose cables are joined (createSimDevice's `peer`);
//     vfio:0000:00:04.0 vfio:0000:00:05.0: two virtio-net devices on one network (the test VM's pair).

import { createHash } from 'node:crypto';
import {
  NetDriver, VirtioPciTransport, createSimDevice, isUvirtioError, openTransport, type ReceivedFrame, type VirtioTransport,
} from '../index.js';

async function transports(a?: string, b?: string): Promise<[VirtioTransport, VirtioTransport, string]> {
  if (a && b) return [(await openTransport(a)).transport, (await openTransport(b)).transport, `${a} ↔ ${b}`];
  const simA = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0a' });
  const simB = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0b', peer: simA });
  return [new VirtioPciTransport(simA.fn), new VirtioPciTransport(simB.fn), 'sim:net ↔ sim:net (joined)'];
}

/** An Ethernet frame from `src` to `dst` (EtherType 0x88b5, local experimental) carrying `seq`. */
function frame(dst: Uint8Array, src: Uint8Array, seq: number, length: number): Uint8Array {
  const f = new Uint8Array(length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  new DataView(f.buffer).setUint32(14, seq, true);
  for (let i = 18; i < length; i++) f[i] = (seq + i) & 0xff;
  return f;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const count = Number(args.find((x) => /^\d+$/.test(x)) ?? 100);
  const [addrA, addrB] = args.filter((x) => !/^\d+$/.test(x));
  const [ta, tb, what] = await transports(addrA, addrB);
  const a = await NetDriver.open(ta);
  const b = await NetDriver.open(tb);
  try {
    const digest = (f: Uint8Array): string => createHash('sha256').update(f).digest('hex');
    const expected = new Set<string>();
    const arrived = { a: 0, b: 0, bad: 0 };
    const check = (side: 'a' | 'b') => (f: ReceivedFrame): void => {
      if (expected.delete(digest(f.frame))) arrived[side]++;
      else arrived.bad++;
    };
    a.onFrame(check('a'));
    b.onFrame(check('b'));
    for (let seq = 0; seq < count; seq++) {
      const [from, to] = seq % 2 === 0 ? [a, b] : [b, a];
      const f = frame(to.mac, from.mac, seq, 64 + (seq * 37) % 1450);
      expected.add(digest(f));
      await from.send(f);
    }
    for (let i = 0; i < 500 && expected.size > 0; i++) await new Promise((r) => setTimeout(r, 2));
    const ok = expected.size === 0 && arrived.bad === 0;
    console.log(JSON.stringify({ ok, nics: what, sent: count, receivedByA: arrived.a, receivedByB: arrived.b, missing: expected.size, unexpected: arrived.bad }));
    if (!ok) process.exitCode = 1;
  } finally {
    await a.close();
    await b.close();
  }
}

main().catch((e: unknown) => {
  console.error(isUvirtioError(e) ? `two-nics: ${e.toLine()}` : e);
  process.exit(1);
});

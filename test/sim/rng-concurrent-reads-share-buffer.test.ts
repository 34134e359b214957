// RngDriver.read called again while a read is pending (two reads at once, as any caller of an
// async API may do): every request the driver submits offers the device the same 4096-byte DMA
// buffer (this.buf), so the device writes each request's entropy over the last one's, and each
// read copies out whatever the buffer holds when its completion is taken. Today two concurrent
// read(64) calls return the SAME 64 bytes (the second request's), and the first request's bytes
// are lost: random bytes handed out twice — for keys or nonces, the worst thing an rng driver can
// do — and the device's count of bytes delivered (128) disagrees with what the caller got (64
// distinct). What should happen: each read gets bytes no other read got — concurrent reads
// serialised, or each request given its own buffer — so with sim:rng?seed=N the two results are
// the two halves of the seeded stream, one each.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { RngDriver } from '../../drivers/rng/index.js';

/** The reference device's seeded stream (xorshift32, one byte per step), as in rng-driver.test.ts. */
function seededStream(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

for (const layout of ['split', 'packed'] as const) {
  t.test(`${layout}: two reads at once get different bytes, the two halves of the seeded stream`, async (t) => {
    const opened = await openTransport(`sim:rng?seed=7&layout=${layout}`);
    const rng = await RngDriver.open(opened.transport);
    t.teardown(() => rng.close());
    const [a, b] = await Promise.all([rng.read(64), rng.read(64)]);
    t.not(hex(a), hex(b), 'two concurrent reads must not return the same random bytes');
    const stream = seededStream(7, 128);
    t.same([hex(a), hex(b)].sort(), [hex(stream.subarray(0, 64)), hex(stream.subarray(64))].sort(),
      'each read got one of the two 64-byte pieces the device handed out');
  });
}

t.test('eight reads at once: eight distinct results', async (t) => {
  const opened = await openTransport('sim:rng');
  const rng = await RngDriver.open(opened.transport);
  t.teardown(() => rng.close());
  const results = await Promise.all(Array.from({ length: 8 }, () => rng.read(16)));
  t.equal(new Set(results.map(hex)).size, 8, 'no 16 random bytes handed to two callers');
});

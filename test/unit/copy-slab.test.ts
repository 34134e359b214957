// lib/util/copy-slab.ts: small copies (a blk read's result) are carved out of shared blocks instead
// of one ArrayBuffer each. What a user relies on: each copy holds exactly the bytes copied, no
// copy changes when another is written or when the source is reused, a transfer of one copy's
// buffer cannot take the others' bytes away, and large copies are ordinary ones.

import t from 'tap';
import { COPY_SLAB_BYTES, COPY_SLAB_MAX, copyBytes } from '../../lib/util/copy-slab.js';

t.test('copies hold their bytes and never alias each other or the source', (t) => {
  const source = new Uint8Array(8192);
  const copies: { copy: Uint8Array; fill: number }[] = [];
  for (let i = 0; i < 3 * (COPY_SLAB_BYTES / 4096) + 5; i++) {
    const fill = (i * 37 + 1) & 0xff;
    source.fill(fill, 100, 100 + 4096);
    copies.push({ copy: copyBytes(source, 100, 100 + 4096), fill });
  }
  source.fill(0); // the source slot is reused by the next request
  for (const { copy, fill } of copies) {
    t.equal(copy.length, 4096);
    if (!copy.every((b) => b === fill)) t.fail(`a copy changed (expected all ${fill})`);
  }
  copies[0]!.copy.fill(0xee);
  t.ok(copies[1]!.copy.every((b) => b === copies[1]!.fill), 'writing one copy leaves its neighbour alone');
  t.ok(new Set(copies.map((c) => c.copy.buffer)).size > 1, 'new blocks are taken as old ones fill up');
  t.end();
});

t.test('odd sizes stay 8-byte aligned; large and empty copies are plain ones', (t) => {
  const src = new Uint8Array(20000).map((_, i) => i & 0xff);
  const a = copyBytes(src, 1, 4);
  const b = copyBytes(src, 10, 522);
  t.same([...a], [1, 2, 3]);
  t.equal(b.byteOffset % 8, 0, 'the next copy starts 8-byte aligned');
  t.same(b, src.subarray(10, 522));
  const big = copyBytes(src, 0, COPY_SLAB_MAX + 1);
  t.equal(big.byteOffset, 0);
  t.equal(big.buffer.byteLength, COPY_SLAB_MAX + 1, 'a copy above the limit has its own ArrayBuffer');
  t.equal(copyBytes(src, 5, 5).length, 0);
  t.end();
});

t.test('transferring a copy\'s buffer does not detach the block under the other copies', (t) => {
  const src = new Uint8Array(512).fill(7);
  const one = copyBytes(src, 0, 512);
  const two = copyBytes(src, 0, 512);
  try {
    structuredClone(one, { transfer: [one.buffer as ArrayBuffer] });
  } catch {
    // refused (DataCloneError): as good
  }
  t.equal(two.length, 512, 'the neighbour is still attached');
  t.ok(two.every((b) => b === 7));
  t.ok(copyBytes(src, 0, 512).every((b) => b === 7), 'later copies still work');
  t.end();
});

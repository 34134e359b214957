// lib/util/copy-bytes.ts: what a blk read returns. What a user relies on: the copy holds exactly
// the bytes copied, in an ArrayBuffer of its own (so cloning, transferring or sending it carries
// nothing else: no other read's data, no bytes never written), and it does not change when the
// source slot is reused.

import t from 'tap';
import { copyBytes } from '../../lib/util/copy-bytes.js';

t.test('a copy owns exactly its bytes', (t) => {
  const source = new Uint8Array(8192).map((_, i) => (i * 7) & 0xff);
  const a = copyBytes(source, 100, 100 + 4096);
  const b = copyBytes(source, 5, 8);
  t.same(a, source.subarray(100, 4196));
  t.same([...b], [35, 42, 49]);
  for (const c of [a, b]) {
    t.equal(c.byteOffset, 0);
    t.equal(c.buffer.byteLength, c.length, 'its ArrayBuffer holds nothing else');
    t.notOk(Buffer.isBuffer(c), 'a plain Uint8Array: slice() copies');
  }
  source.fill(0);
  t.equal(a[0], (100 * 7) & 0xff, 'unchanged when the source is reused');
  t.equal(copyBytes(source, 5, 5).length, 0);
  t.end();
});

t.test('cloning or transferring a copy carries only its bytes and leaves the others alone', (t) => {
  const source = new Uint8Array(512).fill(7);
  const one = copyBytes(source, 0, 512);
  const two = copyBytes(source, 0, 512);
  const cloned = structuredClone(one);
  t.equal(cloned.buffer.byteLength, 512);
  structuredClone(one, { transfer: [one.buffer as ArrayBuffer] });
  t.equal(one.length, 0, 'the transferred copy is detached');
  t.ok(two.length === 512 && two.every((b) => b === 7), 'its neighbour is untouched');
  t.end();
});

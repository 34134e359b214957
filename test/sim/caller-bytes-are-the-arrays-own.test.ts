// Every call that takes bytes from its caller reads or writes the array's own memory, told by its
// internal slots: not its prototype (a real Uint8Array with a null prototype or from another realm
// is one; an Int8Array / Uint16Array given Uint8Array.prototype is not), not an own `length`, not
// an own iterator (one that never ends would hang the call). Found by a breaker for
// BlkDriver.readInto (fixed: `instanceof` decided; blk write, net send, the net header codecs and
// console emergencyWrite had the same check, and emergencyWrite iterated the caller's array).

import t from 'tap';
import vm from 'node:vm';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver, decodeNetHeader, encodeNetHeader } from '../../drivers/net/index.js';
import { openTransport } from '../../lib/open.js';
import { codeOf, codeOfAsync } from '../support/codes.js';
import { bringUp } from '../support/console.js';

const dressed = (): Uint8Array => Object.setPrototypeOf(new Uint16Array(2048), Uint8Array.prototype) as Uint8Array;
const nullProto = (n: number, fill = 0): Uint8Array => Object.setPrototypeOf(new Uint8Array(n).fill(fill), null) as Uint8Array;
const foreign = (n: number): Uint8Array => vm.runInNewContext(`new Uint8Array(${n})`) as Uint8Array;

t.test('blk: write and readInto take a Uint8Array by what it is', async (t) => {
  const o = await openTransport('sim:blk');
  const blk = await BlkDriver.open(o.transport);
  t.teardown(() => blk.close());
  t.equal(await codeOfAsync(() => blk.write(0, dressed())), 'E_INVALID_ARGUMENT', 'write: a Uint16Array dressed as a Uint8Array is refused');
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, dressed())), 'E_INVALID_ARGUMENT', 'readInto: the same');
  t.equal(await codeOfAsync(() => blk.write(0, nullProto(4096, 0x5c))), 'no error', 'write: a null-prototype Uint8Array is written');
  t.same(await blk.read(0, 8), new Uint8Array(4096).fill(0x5c), 'its bytes are on the disk');
  const other = foreign(4096);
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, other)), 'no error', 'readInto: a Uint8Array of another realm');
  t.equal(other[4095], 0x5c, 'its memory holds the bytes');
  const liar = new Uint8Array(4096).fill(0x11);
  Object.defineProperty(liar, 'length', { value: 512 });
  t.equal(await codeOfAsync(() => blk.write(8, liar)), 'no error', 'write: an own length does not decide how much is written');
  t.same(await blk.read(8, 8), new Uint8Array(4096).fill(0x11), 'the whole array went (4096 bytes, not 512)');
});

t.test('net: send and the header codecs', async (t) => {
  const o = await openTransport('sim:net');
  const net = await NetDriver.open(o.transport);
  t.teardown(() => net.close());
  t.equal(await codeOfAsync(() => net.send(dressed())), 'E_INVALID_ARGUMENT', 'send: a Uint16Array dressed as a Uint8Array is refused');
  t.equal(await codeOfAsync(() => net.send(nullProto(60))), 'no error', 'send: a null-prototype Uint8Array is sent');
  t.equal(codeOf(() => encodeNetHeader({}, dressed())), 'E_INVALID_ARGUMENT', 'encodeNetHeader: dressed is refused');
  t.equal(codeOf(() => decodeNetHeader(dressed())), 'E_INVALID_ARGUMENT', 'decodeNetHeader: dressed is refused');
  const into = nullProto(12, 0xff);
  const memory = new Uint8Array(Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'buffer')!.get!.call(into) as ArrayBuffer);
  t.equal(codeOf(() => encodeNetHeader({ flags: 1 }, into)), 'no error', 'encodeNetHeader: a null-prototype Uint8Array is written');
  t.same([...memory], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'through its own memory');
  t.same(decodeNetHeader(foreign(12)).flags, 0, 'decodeNetHeader: a Uint8Array of another realm is read');
});

t.test('console: emergencyWrite reads the memory, not the iterator', async (t) => {
  const { sim, con } = await bringUp(t, { multiport: false });
  const endless = new Uint8Array([0x68, 0x69]);
  Object.defineProperty(endless, Symbol.iterator, { value: function* () { for (;;) yield 0x41; } });
  t.equal(codeOf(() => con.emergencyWrite(endless)), 'no error', 'an own iterator that never ends does not hang it');
  t.equal(Buffer.from(sim.emergency).toString(), 'hi', 'the two bytes of its memory went');
  t.equal(codeOf(() => con.emergencyWrite(dressed())), 'E_INVALID_ARGUMENT', 'a Uint16Array dressed as a Uint8Array is refused');
});

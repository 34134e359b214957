// BlkDriver.readInto: a read copied into the caller's own Uint8Array (no allocation per read).
// What a user relies on: the disk's bytes land in the target at the offset and nowhere else, the
// result is a view of that very memory, a read longer than one request is split and lands whole,
// a target that is not a plain Uint8Array's memory (a Proxy, a lying own `length`, a subclass whose
// subarray() points elsewhere) cannot steer where the bytes go, a bad offset or length is refused
// before the device sees anything, and a target transferred while the read is in flight gives a
// typed error, the driver serving on.

import t from 'tap';
import { codeOfAsync } from '../support/codes.js';
import { openBlkSim, blkPattern } from '../support/blk-sim.js';


t.test('the bytes land in the target at the offset, nowhere else, and the result is that memory', async (t) => {
  const { blk } = await openBlkSim(t);
  const data = blkPattern(8192, 5);
  await blk.write(64, data);
  const target = new Uint8Array(3 * 4096).fill(0xee);
  const got = await blk.readInto(64, 16, target, 4096);
  t.same(got, data, "the disk's bytes");
  t.equal(got.buffer, target.buffer, 'a view of the target, not a copy');
  t.equal(got.byteOffset, 4096);
  t.equal(got.length, 8192);
  t.ok(target.subarray(0, 4096).every((b) => b === 0xee) && target.subarray(4096 + 8192).every((b) => b === 0xee), 'nothing outside the range was written');
  const buf = Buffer.alloc(8192);
  t.same(await blk.readInto(64, 16, buf), data, 'a Buffer is a Uint8Array: it works as a target');
  t.same(await blk.read(64, 16), data, 'the same bytes read() returns');
});

t.test('longer than one request (maxTransfer 16 KiB): split, every piece at its place', async (t) => {
  const { sim, blk } = await openBlkSim(t);
  const data = blkPattern(64 * 1024, 9);
  await blk.write(0, data);
  const before = sim.stats.notifications[0]!;
  const target = new Uint8Array(64 * 1024 + 512).fill(0xee);
  const got = await blk.readInto(0, 128, target, 512);
  t.same(got, data, 'all 64 KiB, in order');
  t.ok(target.subarray(0, 512).every((b) => b === 0xee), 'the bytes before the offset untouched');
  t.ok(sim.stats.notifications[0]! - before >= 1, 'the device was asked');
  t.ok(blk.maxTransfer < 64 * 1024, `one request carries ${blk.maxTransfer} bytes: 64 KiB went as several`);
});

t.test('a target that lies about itself cannot steer where the bytes go', async (t) => {
  const { blk } = await openBlkSim(t);
  await blk.write(0, blkPattern(4096, 1));
  const proxied = new Proxy(new Uint8Array(4096), {});
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, proxied)), 'E_INVALID_ARGUMENT', 'a Proxy of a Uint8Array is refused');
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, new DataView(new ArrayBuffer(4096)) as never)), 'E_INVALID_ARGUMENT', 'a DataView is refused');
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, new Int8Array(4096) as never)), 'E_INVALID_ARGUMENT', 'another kind of typed array is refused');
  const liar = new Uint8Array(512);
  Object.defineProperty(liar, 'length', { value: 1 << 20 });
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, liar)), 'E_INVALID_ARGUMENT', "an own `length` larger than the memory does not make room: 4 KiB does not fit 512 bytes");
  const sub = new Uint8Array(4096);
  Object.defineProperty(sub, 'subarray', { value: () => new Uint8Array(1 << 16) }); // points elsewhere
  const got = await blk.readInto(0, 8, sub);
  t.same(sub, blkPattern(4096, 1), "a subclass's own subarray() is not what the driver writes through: the bytes are in the target");
  t.equal(got.buffer, sub.buffer, 'and the result is a view of its memory');
});

t.test('refused before the device sees anything', async (t) => {
  const { sim, blk } = await openBlkSim(t);
  const notified = (): number => sim.stats.notifications[0]!;
  const target = new Uint8Array(4096);
  const n0 = notified();
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target, 1)), 'E_INVALID_ARGUMENT', 'an offset that leaves too little room');
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target, -1)), 'E_INVALID_ARGUMENT', 'a negative offset');
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target, 0.5)), 'E_INVALID_ARGUMENT', 'a fractional offset');
  t.equal(await codeOfAsync(() => blk.readInto(0, 16, target)), 'E_INVALID_ARGUMENT', 'more sectors than the target holds');
  t.equal(await codeOfAsync(() => blk.readInto(4095, 8, target)), 'E_OUT_OF_RANGE', 'beyond the disk');
  t.equal(notified(), n0, 'no request reached the device');
  await blk.close();
  t.equal(await codeOfAsync(() => blk.readInto(0, 8, target)), 'E_CLOSED', 'a closed driver refuses');
});

t.test('the target transferred while the read is in flight: a typed error, and the driver serves on', async (t) => {
  const { blk } = await openBlkSim(t, { latencyMs: 30 });
  await blk.write(0, blkPattern(4096, 2));
  const target = new Uint8Array(4096);
  const pending = blk.readInto(0, 8, target);
  structuredClone(target.buffer, { transfer: [target.buffer] }); // detaches target
  t.equal(await codeOfAsync(() => pending), 'E_INVALID_ARGUMENT', 'the read rejects with E_INVALID_ARGUMENT, not a TypeError');
  t.same(await blk.read(0, 8), blkPattern(4096, 2), 'the next read works (the slot was given back)');
});

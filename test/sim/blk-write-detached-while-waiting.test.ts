// Breaker 28 (FAILS at 8f9c7da): write()/writeMany keep a plain view of the caller's memory
// (plainBytes) and copy it into the slot only in RequestRunner.fill(), when a slot is free. If the
// caller transfers (detaches) its buffer while the write waits for a slot, fill() throws a raw
// TypeError ("Cannot perform %TypedArray%.prototype.set on a detached ArrayBuffer") out of the
// run() loop: the call rejects untyped, and the slots taken for that batch are never given back,
// so with depth 1 every later request waits for ever (the driver hangs).
import t from 'tap';
import { settledCode } from '../support/codes.js';
import { openBlkSim } from '../support/blk-sim.js';
import { unhandledRejections } from '../support/unhandled.js';

t.test('write() detached while waiting for a slot: typed rejection, no leaked slot', async (t) => {
  const unhandled = unhandledRejections(t);
  const { blk } = await openBlkSim(t, { latencyMs: 20, depth: 1 });
  const busy = blk.read(0, 8); // holds the only slot
  const data = new Uint8Array(4096).fill(7);
  const w = blk.write(8, data); // waits for the slot
  w.catch(() => {});
  structuredClone(data.buffer, { transfer: [data.buffer] }); // the caller detaches its buffer meanwhile
  await busy;
  const code = await settledCode(w, 2000);
  t.equal(code, 'E_INVALID_ARGUMENT', 'the write is refused: its data went before its slot came');
  t.equal(await settledCode(blk.read(0, 8), 2000), 'ok', 'the driver still serves the next read (the slot was given back)');
  t.same(unhandled.map(String), [], 'no unhandled rejection');
});

t.test('writeMany split over slots, buffer detached mid-call: typed rejection, driver keeps working', async (t) => {
  const { blk } = await openBlkSim(t, { latencyMs: 20, depth: 1 });
  const data = new Uint8Array(64 * 1024).fill(9); // 4 requests of 16 KiB, one slot
  const w = blk.writeMany([{ sector: 0, data }]);
  w.catch(() => {});
  await new Promise((r) => setTimeout(r, 5));
  structuredClone(data.buffer, { transfer: [data.buffer] });
  const code = await settledCode(w, 2000);
  t.equal(code, 'E_INVALID_ARGUMENT', 'the writeMany is refused: its data went before its slot came');
  t.equal(await settledCode(blk.read(0, 8), 2000), 'ok', 'the next read is served');
});

t.test('write() from a resizable ArrayBuffer shrunk while the split write waits for a slot: typed, no leaked slot', async (t) => {
  const { blk } = await openBlkSim(t, { latencyMs: 10, depth: 1 });
  const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(64 * 1024, { maxByteLength: 64 * 1024 });
  const w = blk.write(0, new Uint8Array(rab));
  w.catch(() => {});
  await new Promise((r) => setTimeout(r, 3));
  rab.resize(100); // the later pieces' views are now out of bounds
  const code = await settledCode(w, 2000);
  t.equal(code, 'E_INVALID_ARGUMENT', 'the write is refused: its data went before its slot came');
  t.equal(await settledCode(blk.write(0, new Uint8Array(512)), 2000), 'ok', 'the next write is served');
});

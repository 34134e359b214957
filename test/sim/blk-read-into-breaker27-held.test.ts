// Breaker 27: what held when probing BlkDriver.readInto (commit 335d497).
import t from 'tap';
import fc from 'fast-check';
import { codeOfAsync, settledCode } from '../support/codes.js';
import { openBlkSim, blkPattern, type BlkSimOptions } from '../support/blk-sim.js';
import { unhandledRejections } from '../support/unhandled.js';

/** ES2024 resizable and growable buffers (the project's lib is older; Node 20 has them). */
type Resizable = ArrayBuffer & { resize(n: number): void };
type Growable = SharedArrayBuffer & { grow(n: number): void };
const resizable = (n: number, max: number): Resizable => new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Resizable)(n, { maxByteLength: max });
const growable = (n: number, max: number): Growable => new (SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Growable)(n, { maxByteLength: max });

const bringUp = (t: { teardown(fn: () => unknown): void }, opts: BlkSimOptions = {}) => openBlkSim(t, { layout: 'split', ...opts });

t.test('a species getter on the target (own constructor, subclass) cannot steer where the bytes go', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, blkPattern(4096, 4));
  const elsewhere = new Uint8Array(4096);
  let calls = 0;
  const own = new Uint8Array(4096);
  Object.defineProperty(own, 'constructor', { value: { get [Symbol.species]() { calls++; return function Evil() { return elsewhere; }; } } });
  class Sub extends Uint8Array { static get [Symbol.species](): never { calls++; throw new Error('species says no'); } }
  const sub = new Sub(4096);
  for (const target of [own, sub]) {
    const got = await blk.readInto(0, 8, target);
    t.same(Uint8Array.from(target), blkPattern(4096, 4), 'the bytes are in the target');
    t.equal(got.buffer, target.buffer, 'the result is a view of the target');
  }
  t.ok(elsewhere.every((b) => b === 0), 'nothing went elsewhere');
  t.equal(calls, 0, 'no species getter was consulted');
});

t.test('resizable ArrayBuffer, length-tracking view: grow and shrink in flight', async (t) => {
  const { blk } = await bringUp(t, { latencyMs: 5 });
  const data = blkPattern(32 * 1024, 5);
  await blk.write(0, data);
  // grow in flight: lands
  let rab = resizable(32 * 1024, 128 * 1024);
  let view = new Uint8Array(rab);
  let p = blk.readInto(0, 64, view);
  rab.resize(64 * 1024);
  const got = await p;
  t.same(got, data, 'grown: the bytes land');
  t.ok(view.subarray(32 * 1024).every((b) => b === 0), 'nothing beyond the range');
  // shrink in flight: typed, and the driver serves on
  rab = resizable(32 * 1024, 128 * 1024);
  view = new Uint8Array(rab);
  p = blk.readInto(0, 64, view);
  rab.resize(20 * 1024);
  t.equal(await codeOfAsync(p), 'E_INVALID_ARGUMENT', 'shrunk: typed');
  t.same(await blk.read(0, 64), data, 'the driver serves on');
  // shrink then grow back before completion: same memory, lands
  rab = resizable(32 * 1024, 128 * 1024);
  view = new Uint8Array(rab, 512);
  p = blk.readInto(0, 8, view, 512);
  rab.resize(100);
  rab.resize(32 * 1024);
  const code = await codeOfAsync(p);
  t.ok(code === 'no error' || code === 'E_INVALID_ARGUMENT', `shrink+grow: ${code}`);
  t.ok(new Uint8Array(rab, 0, 1024).every((b) => b === 0) && new Uint8Array(rab, 1024 + 4096).every((b) => b === 0), 'nothing outside');
  // detached by transfer mid-split, several depths: all settle typed, slots back
  for (let i = 0; i < 5; i++) {
    const ab = new ArrayBuffer(32 * 1024);
    const q = blk.readInto(0, 64, new Uint8Array(ab));
    await new Promise((r) => setTimeout(r, i * 2));
    structuredClone(ab, { transfer: [ab] }); /* detach (Node 20 has no ArrayBuffer.prototype.transfer) */
    const code = await settledCode(q, 3000);
    t.ok(code === 'E_INVALID_ARGUMENT' || code === 'ok', `transfer after ${i * 2} ms: ${code} (ok when it landed first)`);
  }
  const many = await Promise.all(Array.from({ length: 16 }, () => blk.read(0, 32)));
  t.equal(many.length, 16, 'all slots given back');
});

t.test('SharedArrayBuffer and growable SAB targets', async (t) => {
  const { blk } = await bringUp(t, { latencyMs: 2 });
  const data = blkPattern(32 * 1024, 6);
  await blk.write(0, data);
  const sab = new SharedArrayBuffer(33 * 1024);
  const got = await blk.readInto(0, 64, new Uint8Array(sab), 512);
  t.same(got, data);
  t.ok(new Uint8Array(sab, 0, 512).every((b) => b === 0));
  const gsab = growable(32 * 1024, 64 * 1024);
  const p = blk.readInto(0, 64, new Uint8Array(gsab));
  gsab.grow(64 * 1024);
  t.same(await p, data);
  t.ok(new Uint8Array(gsab, 32 * 1024).every((b) => b === 0));
});

t.test('targets in DMA memory and overlapping concurrent reads', async (t) => {
  const { blk } = await bringUp(t, { latencyMs: 2 });
  const data = blkPattern(64 * 1024, 7);
  await blk.write(0, data);
  const region = blk.device.dma.alloc(64 * 1024);
  t.same(await blk.readInto(0, 128, region.bytes), data, 'DMA memory as the target');
  const target = new Uint8Array(64 * 1024 + 4096).fill(0xee);
  const a = blk.readInto(0, 128, target, 0);
  const b = blk.readInto(0, 128, target, 4096); // overlaps a's range
  const c = blk.readInto(0, 128, target, 0);
  await Promise.all([a, b, c]);
  t.same(target.subarray(4096), data, 'the last writer of every piece');
});

t.test('sector/offset argument edge cases: typed refusals', async (t) => {
  const { blk } = await bringUp(t);
  const target = new Uint8Array(8192);
  const cases: [string, () => Promise<unknown>, string][] = [
    ['sectors NaN', () => blk.readInto(0, NaN, target), 'E_INVALID_ARGUMENT'],
    ['sectors Infinity', () => blk.readInto(0, Infinity, target), 'E_INVALID_ARGUMENT'],
    ['sectors -1', () => blk.readInto(0, -1, target), 'E_INVALID_ARGUMENT'],
    ['sectors 0', () => blk.readInto(0, 0, target), 'E_INVALID_ARGUMENT'],
    ['sectors huge', () => blk.readInto(0, 2 ** 53, target), 'E_INVALID_ARGUMENT'],
    ['sectors 2^52', () => blk.readInto(0, 2 ** 52, target), 'E_OUT_OF_RANGE'],
    ['sector -0', () => blk.readInto(-0, 8, target), 'no error'],
    ['offset "0"', () => blk.readInto(0, 8, target, '0' as never), 'E_INVALID_ARGUMENT'],
    ['offset 0n', () => blk.readInto(0, 8, target, 0n as never), 'E_INVALID_ARGUMENT'],
    ['sector 0n', () => blk.readInto(0n as never, 8, target), 'E_INVALID_ARGUMENT'],
    ['sectors 8n', () => blk.readInto(0, 8n as never, target), 'E_INVALID_ARGUMENT'],
    ['offset null', () => blk.readInto(0, 8, target, null as never), 'E_INVALID_ARGUMENT'],
    ['offset -0', () => blk.readInto(0, 8, target, -0), 'no error'],
    ['offset NaN', () => blk.readInto(0, 8, target, NaN), 'E_INVALID_ARGUMENT'],
    ['target revoked proxy', () => { const r = Proxy.revocable(new Uint8Array(4096), {}); r.revoke(); return blk.readInto(0, 8, r.proxy); }, 'E_INVALID_ARGUMENT'],
    ['target null', () => blk.readInto(0, 8, null as never), 'E_INVALID_ARGUMENT'],
    ['target detached', () => { const ab = new ArrayBuffer(4096); const u = new Uint8Array(ab); structuredClone(ab, { transfer: [ab] }); return blk.readInto(0, 8, u); }, 'E_INVALID_ARGUMENT'],
    ['target Object.create(Uint8Array.prototype)', () => blk.readInto(0, 8, Object.create(Uint8Array.prototype)), 'E_INVALID_ARGUMENT'],
  ];
  for (const [name, f, code] of cases) t.equal(await codeOfAsync(f), code, name);
});

t.test('a Buffer from the pool: its neighbours are never written', async (t) => {
  const { blk } = await bringUp(t);
  await blk.write(0, blkPattern(4096, 8));
  const before = Buffer.from('before-neighbour');
  const buf = Buffer.allocUnsafe(1024).fill(0);
  const after = Buffer.from('after-neighbour');
  t.ok(buf.buffer === before.buffer || buf.buffer === after.buffer || buf.byteOffset > 0, 'pooled');
  const pool = new Uint8Array(buf.buffer as ArrayBuffer);
  const snapshot = Uint8Array.from(pool);
  await blk.readInto(0, 1, buf, 512);
  t.same(Uint8Array.from(buf.subarray(512)), blkPattern(512, 8));
  // Only the window from `before` to the end of `after`: other code may take later pool bytes meanwhile.
  for (let i = before.byteOffset; i < after.byteOffset + after.length; i++) {
    if (i >= buf.byteOffset + 512 && i < buf.byteOffset + 1024) continue;
    if (pool[i] !== snapshot[i]) { t.fail(`pool byte ${i} changed (buf at ${buf.byteOffset}, before at ${before.byteOffset}, after at ${after.byteOffset})`); break; }
  }
  t.equal(before.toString(), 'before-neighbour');
  t.equal(after.toString(), 'after-neighbour');
  t.equal(await codeOfAsync(() => blk.readInto(0, 1, Buffer.from('x'))), 'E_INVALID_ARGUMENT', 'a 1-byte pooled Buffer has no room');
});

t.test('readInto matches read() for random ranges', async (t) => {
  const { blk } = await bringUp(t);
  const disk = blkPattern(4096 * 512, 9);
  await blk.write(0, disk.subarray(0, 2 * 1024 * 1024));
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 1, max: 96 }), fc.integer({ min: 0, max: 1000 }), async (sector, sectors, extra) => {
    sectors = Math.min(sectors, 4096 - sector);
    const target = new Uint8Array(sectors * 512 + extra + 7).fill(0xee);
    const got = await blk.readInto(sector, sectors, target, extra);
    const want = await blk.read(sector, sectors);
    if (Buffer.compare(got, want) !== 0) return false;
    return target.subarray(0, extra).every((b) => b === 0xee) && target.subarray(extra + sectors * 512).every((b) => b === 0xee);
  }), { numRuns: 60 });
  t.pass('held');
});

t.test('stop → snapshot → reinit with readInto in flight: every byte lands', async (t) => {
  const { blk } = await bringUp(t, { ringState: true, latencyMs: 3, depth: 2 });
  const data = blkPattern(16 * 4096, 10);
  await blk.write(0, data);
  const target = new Uint8Array(16 * 4096 + 1024).fill(0xee);
  const reads = [blk.readInto(0, 64, target, 512), blk.readInto(64, 32, target, 512 + 32 * 1024), blk.readInto(96, 32, target, 512 + 48 * 1024)];
  await blk.stop();
  await blk.reinit(blk.snapshot());
  const codes = await Promise.all(reads.map((r) => settledCode(r, 5000)));
  t.same(codes, ['ok', 'ok', 'ok']);
  t.same(target.subarray(512, 512 + 64 * 1024), data);
  t.ok(target.subarray(0, 512).every((b) => b === 0xee) && target.subarray(512 + 64 * 1024).every((b) => b === 0xee));
});

for (const kind of ['bad-blk-status', 'used-len-short', 'bad-used-id', 'completion-silence'] as const) {
  t.test(`${kind} mid-split: settles typed, slots back, serves after recover`, async (t) => {
    const unhandled = unhandledRejections(t);
    const { sim, blk } = await bringUp(t, { depth: 2, latencyMs: 2, requestTimeoutMs: 300 });
    const data = blkPattern(64 * 1024, 11);
    await blk.write(0, data);
    const target = new Uint8Array(64 * 1024 + 1024).fill(0xee);
    sim.injectFault({ kind, count: 1 } as Parameters<typeof sim.injectFault>[0]);
    const p = blk.readInto(0, 128, target, 512);
    const code = await settledCode(p, 5000);
    t.ok(code !== 'ok' && !code.startsWith('foreign') && code !== 'HANG', `typed: ${code}`);
    t.ok(target.subarray(0, 512).every((b) => b === 0xee) && target.subarray(512 + 64 * 1024).every((b) => b === 0xee), 'nothing outside');
    sim.clearFaults();
    if (blk.device.failure) await blk.recover();
    t.same(await blk.readInto(0, 128, target, 512), data, 'reads again');
    const all = await Promise.all(Array.from({ length: 6 }, () => settledCode(blk.readInto(0, 32, new Uint8Array(16384)), 3000)));
    t.same(all, Array(6).fill('ok'), 'slots all given back');
    await new Promise((r) => setTimeout(r, 50));
    t.same(unhandled.map(String), [], 'no unhandled rejection');
  });
}

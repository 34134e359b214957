// What a careless caller or a hostile input did to the SDK, found by trying to break it after the
// settle-everything work (issue 10): concurrent operations, close() in the middle of one, recovery
// of a multi-queue NIC, snapshots that are too big or lost their device state, rehearsals that must
// catch chains in the rings and drive 4 KiB-block disks. Each test asserts the promised behaviour.

import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport } from '../../lib/open.js';
import type { SimNetDevice } from '../../lib/sim/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { parseSnapshot, type DeviceSnapshot } from '../../lib/virtio/snapshot/index.js';
import { rehearse } from '../../cli/rehearsal/engine.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Settles p within ms as { ok, code }; 'HANG' when it does not. */
async function outcome(p: Promise<unknown>, ms = 5000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<string>((r) => (timer = setTimeout(() => r('HANG'), ms)));
  const done = p.then(() => 'ok', (e: unknown) => (e instanceof UvirtioError ? e.code : `foreign ${(e as Error)?.constructor?.name}`));
  try {
    return await Promise.race([done, hang]);
  } finally {
    clearTimeout(timer);
  }
}

t.test('NetDriver.recover() with two queue pairs sends VQ_PAIRS_SET again: sends on pair 1 complete', async (t) => {
  const src = await openTransport('sim:net?pairs=2');
  const net = await NetDriver.open(src.transport, { requestTimeoutMs: 500 });
  t.teardown(() => net.close());
  t.equal(net.activePairs, 2);
  src.sim!.injectFault({ kind: 'needs-reset' });
  await sleep(30);
  t.equal(net.device.phase, 'needs-reset');
  await net.recover();
  const sends = Array.from({ length: 4 }, (_, i) => outcome(net.send(new Uint8Array(60).fill(i)), 3000));
  const codes = await Promise.all(sends);
  t.same(codes, ['ok', 'ok', 'ok', 'ok'], 'every send after recover() completes (pair 1 included)');
  t.equal((src.sim as SimNetDevice).activePairs, net.activePairs, 'the device uses as many pairs as the driver thinks');
});

t.test('snapshot() after close() is E_CLOSED, a UvirtioError', async (t) => {
  const src = await openTransport('sim:blk');
  const blk = await BlkDriver.open(src.transport);
  await blk.close();
  let e: unknown;
  try {
    blk.snapshot();
  } catch (x) {
    e = x;
  }
  t.ok(e instanceof UvirtioError, `a typed error (got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message})`);
});

t.test('two reinit() calls at once: the second is refused, the strict device records no violation', async (t) => {
  const src = await openTransport('sim:blk?latency=2');
  const dst = await openTransport('sim:blk?latency=2', { shareWith: src });
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  await blk.stop();
  const snap = blk.snapshot();
  const a = outcome(blk.reinit(snap, { target: dst.transport }));
  const b = outcome(blk.reinit(snap));
  const codes = await Promise.all([a, b]);
  t.ok(codes.includes('E_BAD_STATE'), `the second concurrent reinit is refused (got ${codes.join(', ')})`);
  t.same([...src.sim!.violations, ...dst.sim!.violations].map((v) => v.id), [], 'no spec violation on either device');
  t.notOk(src.transport.readStatus() !== 0 && blk.device.transport !== src.transport, `the source is not left half-initialised (status 0x${src.transport.readStatus().toString(16)})`);
});

t.test('two recover() calls at once: the second is refused, the strict device records no violation', async (t) => {
  const src = await openTransport('sim:blk');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  src.sim!.injectFault({ kind: 'needs-reset' });
  await sleep(30);
  const codes = await Promise.all([outcome(blk.recover()), outcome(blk.recover())]);
  t.ok(codes.includes('ok'), codes.join(', '));
  t.ok(codes.includes('E_BAD_STATE'), 'the second concurrent recover is refused');
  t.equal(blk.device.phase, 'live');
  t.same(src.sim!.violations.map((v) => v.id), [], 'no spec violation');
});

t.test('close() during a reinit: the device stays closed, later calls are E_CLOSED', async (t) => {
  const src = await openTransport('sim:blk?mode=hold&latency=5');
  const blk = await BlkDriver.open(src.transport, { resetTimeoutMs: 300 });
  await blk.stop();
  const snap = blk.snapshot();
  src.sim!.injectFault({ kind: 'reset-stuck' });
  const r = outcome(blk.reinit(snap));
  await sleep(20);
  await blk.close();
  await r;
  src.sim!.clearFaults();
  t.equal(blk.device.phase, 'closed', 'a closed device stays closed');
  let code = 'none';
  try {
    blk.snapshot();
  } catch (e) {
    code = (e as UvirtioError).code ?? String(e);
  }
  t.equal(code, 'E_CLOSED', 'snapshot() after close says E_CLOSED');
});

t.test('stop() while a reinit is in progress is refused; the device ends up live', async (t) => {
  const src = await openTransport('sim:blk?mode=hold&latency=5');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  await blk.stop();
  const snap = blk.snapshot();
  const r = outcome(blk.reinit(snap));
  const s = outcome(blk.stop());
  const [rc, sc] = await Promise.all([r, s]);
  t.equal(rc, 'ok');
  t.equal(sc, 'E_BAD_STATE', 'the stop is refused while the reinit runs');
  t.equal(blk.device.phase, 'live', 'the reinit made the device live');
  t.ok(sc !== 'ok' || blk.device.phase === 'stopped', `stop() resolved (${sc}) so the device should be stopped, it is ${blk.device.phase}`);
});

t.test('a snapshot with a ~3 MiB deviceState is refused with E_SNAPSHOT_SCHEMA (no stack overflow)', async (t) => {
  const src = await openTransport('sim:blk?mode=hold&latency=5');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  await blk.stop();
  const snap = JSON.parse(JSON.stringify(blk.snapshot())) as DeviceSnapshot;
  snap.deviceState = { bytes: 'ab'.repeat(4 << 20) }; // 8 MiB of hex: well under the 32 MiB file bound
  let e: unknown;
  try {
    parseSnapshot(JSON.stringify(snap));
  } catch (x) {
    e = x;
  }
  t.ok(e === undefined || e instanceof UvirtioError, `parsing ends with a typed error or succeeds (got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message})`);
});

t.test('a snapshot whose deviceState was removed is refused before it is applied (E_SNAPSHOT_INCONSISTENT)', async (t) => {
  const src = await openTransport('sim:blk?mode=hold&latency=3');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  const writes = Array.from({ length: 32 }, (_, i) => blk.write(i * 8, new Uint8Array(4096).fill(i + 1)));
  for (const w of writes) void w.catch(() => undefined);
  for (let i = 0; i < 200 && src.sim!.held === 0; i++) await new Promise((r) => setImmediate(r));
  await blk.stop();
  const snap = JSON.parse(JSON.stringify(blk.snapshot())) as DeviceSnapshot;
  t.ok(snap.deviceState, 'the device held requests: the snapshot has device state');
  const code = await outcome(blk.reinit({ ...snap, deviceState: null }));
  t.match(code, /^E_SNAPSHOT_/, `refused as bad input before any device is touched (got ${code})`);
  t.same(src.sim!.violations.map((v) => v.id), [], 'no violation on the device');
});

t.test('rehearse on blk: the stops catch chains in the rings (and, in hold mode, held by the device)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'uvirtio-break-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const report = await rehearse({ device: 'sim:blk?mode=hold&latency=1', cycles: 5, inflight: 16, mechanism: 'auto', layout: 'auto', seed: 1, snapshotDir: dir });
  t.ok(report.ok);
  const inRing = readdirSync(dir).filter((f) => f.endsWith('.json'))
    .map((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as DeviceSnapshot).queues.reduce((n, q) => n + q.inFlight, 0));
  t.ok(report.cycle_reports.every((c) => c.inFlightAtStop > 0), 'the report says requests were in flight at every stop');
  t.ok(inRing.some((n) => n > 0), `at least one stop had chains in the ring (snapshots' inFlight: ${inRing.join(', ')})`);
});

t.test('rehearse drives a blk device with 4096-byte logical blocks', async (t) => {
  const code = await outcome(rehearse({ device: 'sim:blk?blksize=4096', cycles: 1, inflight: 4, mechanism: 'auto', layout: 'auto', seed: 1 }), 30_000);
  t.equal(code, 'ok', 'a rehearsal runs on a 4K-block disk');
});

t.test('net MRG_RXBUF: a frame\'s first buffer too short to hold the header fails the device (its frame boundaries are lost) — no garbage frames', async (t) => {
  const src = await openTransport('sim:net?mergeable=1');
  const net = await NetDriver.open(src.transport, { rxBufferSize: 112 });
  t.teardown(() => net.close());
  const frames: Uint8Array[] = [];
  net.onFrame((f) => frames.push(f.frame));
  (src.sim as SimNetDevice).injectFault({ kind: 'used-len-short', queue: 0 });
  await outcome(net.send(new Uint8Array(300).fill(0x5a)));
  await sleep(30);
  t.same(frames.filter((f) => f.length !== 300), [], 'no frame made of the rest of the broken one');
  t.equal(net.device.failure?.code, 'E_DEVICE_SHORT_USED_LEN', 'the device failed with the reason');
  await net.recover();
  await net.send(new Uint8Array(300).fill(0x33));
  for (let i = 0; i < 100 && !frames.some((f) => f[0] === 0x33); i++) await sleep(2);
  t.ok(frames.some((f) => f.length === 300 && f[0] === 0x33), 'after recover() whole frames arrive again');
});

t.test('a transport closed under a live driver: its requests are rejected E_CLOSED at once, not at the watchdog\'s bound', async (t) => {
  const src = await openTransport('sim:blk?completion=manual');
  const blk = await BlkDriver.open(src.transport, { requestTimeoutMs: 60_000 });
  const pending = [0, 1, 2].map((s) => outcome(blk.read(s, 1), 2000));
  await sleep(10);
  src.transport.close();
  t.same(await Promise.all(pending), ['E_CLOSED', 'E_CLOSED', 'E_CLOSED']);
  await blk.close();
});

t.test('close() during a stop that never shows: the stop ends with E_CLOSED at once', async (t) => {
  const src = await openTransport('sim:blk?state=ring-state');
  const blk = await BlkDriver.open(src.transport);
  src.sim!.injectFault({ kind: 'stop-stuck' });
  const started = Date.now();
  const stop = outcome(blk.stop({ timeoutMs: 10_000 }));
  await sleep(20);
  await blk.close();
  t.equal(await stop, 'E_CLOSED');
  t.ok(Date.now() - started < 5000, 'long before its own 10 s bound');
});

t.test('a ring-state stop that never shows fails the device: its requests are rejected with E_STOP_TIMEOUT; recover() brings it back', async (t) => {
  const src = await openTransport('sim:blk?state=ring-state&mode=hold&completion=manual');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  const pending = outcome(blk.read(0, 1));
  await sleep(5);
  src.sim!.injectFault({ kind: 'stop-stuck' });
  t.equal(await outcome(blk.stop({ timeoutMs: 50 })), 'E_STOP_TIMEOUT');
  t.equal(await pending, 'E_STOP_TIMEOUT', 'the pending read is rejected with it (STOP is one-way: the device may never complete it)');
  t.equal(blk.device.phase, 'needs-reset');
  src.sim!.clearFaults();
  await blk.recover();
  t.equal(blk.device.phase, 'live');
});

t.test('after a refused reinit on the same device, snapshot() gives the snapshot it was given (the device was reset), and a retry works', async (t) => {
  const src = await openTransport('sim:blk?state=ring-state&mode=hold&latency=3');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  const writes = [0, 1, 2, 3].map((s) => blk.write(s, new Uint8Array(512).fill(s + 1)));
  await sleep(1);
  await blk.stop();
  const snap = blk.snapshot();
  src.sim!.injectFault({ kind: 'features-refuse' });
  t.equal(await outcome(blk.reinit(snap)), 'E_FEATURES_NOT_OK');
  t.same(blk.snapshot(), snap, 'the same snapshot, not the reset device\'s registers');
  src.sim!.clearFaults();
  await blk.reinit(blk.snapshot());
  await Promise.all(writes);
  t.same([...(await blk.read(2, 1)).subarray(0, 2)], [3, 3], 'the writes held at the stop completed');
});

t.test('snapshot files: an empty deviceState and fields no version writes are refused (E_SNAPSHOT_SCHEMA)', async (t) => {
  const src = await openTransport('sim:blk');
  const blk = await BlkDriver.open(src.transport);
  t.teardown(() => blk.close());
  await blk.stop();
  const good = blk.snapshot();
  const bad = (edit: (s: Record<string, unknown>) => void): string => {
    const s = structuredClone(good) as unknown as Record<string, unknown>;
    edit(s);
    try {
      parseSnapshot(JSON.stringify(s));
      return 'accepted';
    } catch (e) {
      return (e as UvirtioError).code;
    }
  };
  t.equal(bad((s) => { s.deviceState = { bytes: '' }; }), 'E_SNAPSHOT_SCHEMA', 'deviceState.bytes empty');
  t.equal(bad((s) => { s.extra = 1; }), 'E_SNAPSHOT_SCHEMA', 'an unknown top-level field');
  t.equal(bad((s) => { (s.queues as Record<string, unknown>[])[0]!.ring = 1; }), 'E_SNAPSHOT_SCHEMA', 'an unknown queue field');
  t.equal(bad((s) => { s.deviceState = { bytes: '00', more: 1 }; }), 'E_SNAPSHOT_SCHEMA', 'an unknown deviceState field');
  t.equal(bad(() => undefined), 'accepted', 'the unedited snapshot still parses');
});

t.test('rehearse judges only the blocks it wrote (other data on the disk is not "corrupted"), and keeps one request per block', async (t) => {
  const tiny = await rehearse({ device: 'sim:blk?capacity=2&latency=1', cycles: 2, inflight: 16, seed: 5, mechanism: 'auto', layout: 'auto', requestsPerCycle: 20 });
  t.ok(tiny.ok, `a 2-sector disk with --inflight 16: ${JSON.stringify(tiny.requests)}`);
  t.ok(tiny.cycle_reports.every((c) => c.inFlightAtStop <= 2), 'never more in flight than blocks');
});

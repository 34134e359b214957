// One long-running qemu-storage-daemon reused by many successive front-end sessions — the normal
// way to run rehearsals (issue 10): the issue's exact sequences through the CLI (rehearse twice;
// info then rehearse; a script that reads one sector, then rehearse), reinit onto the same daemon
// in interrupt mode over and over (the lost-notification stall), ping-pong between two daemons,
// a daemon that serves another front-end (E_VHOST_BUSY, then served once that one has gone), and
// a soak of 100 stop/restore cycles with requests in flight over 100+ sessions.
//
// Every wait has a watchdog far above what it should take, so a stall fails with what it reached.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { rehearse, type RehearsalReport } from '../../cli/rehearsal/engine.js';
import { inspectSector } from '../../cli/rehearsal/blk.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { isUvirtioError } from '../../lib/errors.js';
import { codeOfAsync } from '../support/codes.js';
import { Daemon, makeImage, type Image } from './daemon.js';

const WATCHDOG_MS = 60_000;

async function watched<T>(what: string, p: Promise<T>, ms = WATCHDOG_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no end within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

interface Run {
  status: number | null;
  out: string;
  err: string;
}

/** Runs the CLI; a run that has not ended at the watchdog is killed (SIGKILL) and reported as status null. */
function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/uvirtio.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), WATCHDOG_MS);
    child.once('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, out, err });
    });
  });
}

/** The issue's command: one cycle, four requests in flight, human output; it must end and say OK with nothing lost. */
async function issueRehearsal(t: Test, d: Daemon, label: string): Promise<void> {
  const r = await cli(['rehearse', '--device', d.address, '--cycles', '1', '--inflight', '4']);
  t.equal(r.status, 0, `${label}: exit status 0${r.status === null ? ' (killed by the watchdog: it stalled)' : ''} ${r.err}`);
  t.match(r.out, /^cycle 1: stopped .* \(\d+ in the rings, backend\)/m, `${label}: cycle 1 ran`);
  t.match(r.out, /^OK: .*\n\s+requests: (\d+) submitted, \1 completed, 0 lost, 0 duplicated, 0 corrupted/m, `${label}: every request completed exactly once`);
}

async function daemon(t: Test, img: Image, name: string, options = {}): Promise<Daemon> {
  const d = await Daemon.start(img, name, options);
  t.teardown(async () => {
    await d.kill('SIGKILL');
  });
  return d;
}

function image(t: Test, mib = 64): Image {
  const img = makeImage(mib);
  t.teardown(() => img.remove());
  return img;
}

t.test("the issue's sequences on one daemon: rehearse twice; info then rehearse; a one-sector read script then rehearse", async (t) => {
  const d = await daemon(t, image(t), 'a');
  await issueRehearsal(t, d, 'first rehearsal');
  await issueRehearsal(t, d, 'second rehearsal on the same daemon');
  const info = await cli(['info', d.address]);
  t.equal(info.status, 0, `info exits 0 ${info.err}`);
  t.match(info.out, /virtio-blk/);
  await issueRehearsal(t, d, 'rehearsal after info');
  // The script: open the device, read one sector, close.
  const dev = await openTransport(d.address);
  const blk = await BlkDriver.open(dev.transport);
  t.equal((await watched('reading one sector', blk.read(0, 1))).length, 512, 'the script read one sector');
  await watched('closing', blk.close());
  await issueRehearsal(t, d, 'rehearsal after the read script');
  t.notMatch(d.stderr, /vu_panic/, `the daemon never panicked (${d.stderr.trim() || 'no stderr'})`);
});

t.test('stop and reinit onto the same daemon, interrupts on, 20 times: requests after each reinit complete', async (t) => {
  // The stall of issue 10: a notification lost at the reinit (libvhost-user writes the call
  // eventfd at SET_VRING_CALL) left every later request waiting, EVENT_IDX never re-armed.
  const d = await daemon(t, image(t), 'a');
  for (let round = 0; round < 20; round++) {
    const dev = await openTransport(d.address);
    const blk = await BlkDriver.open(dev.transport, { interrupts: 'auto', depth: 16 });
    if (!t.equal(blk.device.interruptMode, 'msix', 'call-eventfd interrupts')) return;
    let completed = 0;
    let failed = 0;
    let go = true;
    const loop = async (w: number): Promise<void> => {
      for (let i = 0; go; i++) {
        await blk.write((w * 64 + (i % 64)) % 4096, new Uint8Array(512).fill(w + 1)).then(() => completed++, () => failed++);
      }
    };
    const workers = Array.from({ length: 4 }, (_, w) => loop(w));
    await new Promise((r) => setTimeout(r, 20));
    await watched('stop', blk.stop({ mechanism: 'backend' }));
    await watched('reinit', blk.reinit(blk.snapshot()));
    const before = completed;
    await watched(`round ${round}: 50 requests after the reinit`, (async () => {
      while (completed < before + 50) await new Promise((r) => setTimeout(r, 5));
    })(), 20_000);
    go = false;
    await watched('the workers', Promise.all(workers));
    await watched('close', blk.close());
    if (failed > 0) t.fail(`round ${round}: ${failed} request(s) failed`);
  }
  t.pass('20 rounds: requests went on after every reinit');
});

t.test('ping-pong between two long-running daemons, three processes in a row (--to)', async (t) => {
  const img = image(t);
  const a = await daemon(t, img, 'a', { iops: 4000 });
  const b = await daemon(t, img, 'b', { iops: 4000 });
  for (let run = 1; run <= 3; run++) {
    const r = await cli(['rehearse', '--device', a.address, '--to', b.address, '--mechanism', 'backend', '--cycles', '4', '--inflight', '16', '--seed', String(run), '--json']);
    t.equal(r.status, 0, `run ${run}: exit status 0 ${r.err}`);
    const rep = JSON.parse(r.out || '{}') as Partial<RehearsalReport>;
    t.same([rep.ok, rep.requests?.lost, rep.requests?.duplicated, rep.requests?.corrupted], [true, 0, 0, 0], `run ${run}: ok, nothing lost, duplicated or corrupted`);
    t.same(new Set(rep.cycle_reports?.map((c) => c.to)), new Set([a.address, b.address]), `run ${run}: each daemon served in turn`);
  }
});

t.test('a daemon serving another front-end: E_VHOST_BUSY with the hint, then served once that one has gone', async (t) => {
  const d = await daemon(t, image(t, 16), 'a');
  const first = await openTransport(d.address);
  // The daemon stops accepting while it serves `first` (util/vhost-user-server.c) and listens with
  // a backlog of 1, which a UNIX socket lets hold two connections: the next two wait there, never
  // read (SIOCOUTQ); the one after them is refused with EAGAIN until the bound.
  const waiting = [0, 1, 2].map(() => openTransport(`${d.address}?timeout=500`).then(() => null, (e: unknown) => e));
  const errors = await watched('the three opens', Promise.all(waiting));
  errors.forEach((e, i) => {
    t.equal(isUvirtioError(e) && e.code, 'E_VHOST_BUSY', isUvirtioError(e) ? e.message : String(e));
    t.match(isUvirtioError(e) && e.hint, /qemu-storage-daemon serves one front-end at a time/, 'the hint names the one-client-at-a-time behaviour');
    t.match(isUvirtioError(e) && e.message, i < 2 ? /did not read (the handshake .*|VHOST_USER_[A-Z_]+) within 500 ms/ : /accepted no connection within 500 ms \(its listen backlog stayed full\)/);
  });
  first.transport.close();
  const next = await watched('the open after the first front-end left', openTransport(d.address));
  const blk = await BlkDriver.open(next.transport);
  t.equal((await watched('a read', blk.read(0, 1))).length, 512, 'served');
  await blk.close();
});

t.test('a driver opened again on the vhost-user transport its close() closed: E_CLOSED at once, and a fresh transport is served', async (t) => {
  // The sim transport used to answer such an open as a legacy-only device (E_FEATURE_MISSING;
  // test/sim/closed-transport-refused). Over vhost-user the closed session already refused with
  // E_CLOSED; the check before any message (checkTransportOpen) keeps it so, with the same hint.
  const d = await daemon(t, image(t, 16), 'a');
  const opened = await openTransport(d.address);
  const first = await BlkDriver.open(opened.transport);
  await first.close();
  t.equal(opened.transport.closed, true, "the driver's close() closed its transport");
  const code = await watched('the refused open', codeOfAsync(() => BlkDriver.open(opened.transport)), 5000);
  t.equal(code, 'E_CLOSED', 'refused with E_CLOSED');
  const next = await watched('the open of a fresh transport', openTransport(d.address));
  const blk = await BlkDriver.open(next.transport);
  t.equal((await watched('a read', blk.read(0, 1))).length, 512, 'served');
  await blk.close();
});

t.test('another front-end takes the daemon between a stop and the reinit: E_VHOST_BUSY, bounded; retried once it has gone, the reinit works', async (t) => {
  const d = await daemon(t, image(t, 16), 'a');
  const src = await openTransport(`${d.address}?timeout=500`);
  const blk = await BlkDriver.open(src.transport, { depth: 8 });
  t.teardown(() => blk.close());
  const writes = Array.from({ length: 16 }, (_, i) => codeOfAsync(blk.write(i * 8, new Uint8Array(512).fill(i + 1))));
  await watched('stop', blk.stop({ mechanism: 'backend' }));
  const snap = blk.snapshot();
  // The intruder waits in the daemon's backlog; when the reinit ends our session, the daemon takes
  // the intruder first, and our fresh connection waits behind it.
  const intruder = openTransport(d.address);
  await new Promise((r) => setTimeout(r, 50));
  const e = await watched('the reinit', blk.reinit(snap).then(() => null, (x: unknown) => x));
  t.equal(isUvirtioError(e) && e.code, 'E_VHOST_BUSY', isUvirtioError(e) ? e.message : String(e));
  t.match(isUvirtioError(e) && e.hint, /qemu-storage-daemon serves one front-end at a time/);
  (await watched('the intruder', intruder)).transport.close();
  await watched('the reinit, retried', blk.reinit(snap));
  t.same(await watched('the writes', Promise.all(writes)), writes.map(() => 'no error'), 'every write submitted before the stop completed');
  t.equal((await watched('a read', blk.read(0, 1)))[0], 1, 'the daemon serves us again');
});

t.test('the daemon killed (SIGKILL) in the middle of a rehearsal: the rehearsal ends with E_VHOST_LOST', async (t) => {
  const d = await daemon(t, image(t, 16), 'victim', { iops: 500 });
  const run = codeOfAsync(rehearse({ device: d.address, cycles: 50, inflight: 16, mechanism: 'backend', layout: 'split', seed: 3, requestsPerCycle: 50 }));
  await new Promise((r) => setTimeout(r, 300));
  await d.kill('SIGKILL');
  t.equal(await watched('the rehearsal', run), 'E_VHOST_LOST', 'the rehearsal rejects with E_VHOST_LOST');
});

t.test('soak: 10 front-ends (5 CLI processes, 5 in-process drivers) × 10 cycles with requests in flight on one long-running daemon', async (t) => {
  const img = image(t);
  const d = await daemon(t, img, 'long', { iops: 4000 });
  const total = { cycles: 0, sessions: 0, submitted: 0, completed: 0, lost: 0, duplicated: 0, corrupted: 0, withInFlight: 0 };
  for (let i = 0; i < 10; i++) {
    let r: RehearsalReport;
    if (i % 2 === 0) {
      const run = await cli(['rehearse', '--device', d.address, '--mechanism', 'backend', '--cycles', '10', '--inflight', '16', '--seed', String(100 + i), '--json']);
      t.equal(run.status, 0, `front-end ${i + 1} (a process): exit status 0 ${run.err}`);
      r = JSON.parse(run.out || 'null') as RehearsalReport;
      if (!r) continue;
    } else {
      r = await watched(`front-end ${i + 1}`, rehearse({
        device: d.address, cycles: 10, inflight: 16, mechanism: 'backend', layout: 'split', seed: 100 + i, requestsPerCycle: 150,
      }), 120_000);
    }
    total.cycles += r.cycles;
    // A session to open, one per reinit (a fresh connection), and the one the closing reset opens.
    total.sessions += 1 + r.cycles + 1;
    total.submitted += r.requests.submitted;
    total.completed += r.requests.completed;
    total.lost += r.requests.lost;
    total.duplicated += r.requests.duplicated;
    total.corrupted += r.requests.corrupted;
    total.withInFlight += r.cycle_reports.filter((c) => c.inFlightAtStop > 0).length;
    if (!r.ok) t.fail(`front-end ${i + 1} failed: ${JSON.stringify(r.requests)}`);
  }
  t.comment(`soak: ${JSON.stringify(total)}`);
  t.equal(total.cycles, 100, '100 stop/restore cycles');
  t.ok(total.sessions >= 100, `${total.sessions} front-end sessions on one daemon`);
  t.same([total.lost, total.duplicated, total.corrupted], [0, 0, 0], 'nothing lost, duplicated or corrupted');
  t.equal(total.completed, total.submitted, `every request completed (${total.submitted})`);
  t.ok(total.withInFlight >= 90, `requests were in flight at ${total.withInFlight} of the 100 stops`);
  t.notMatch(d.stderr, /vu_panic/, 'the daemon never panicked');
  t.equal(await d.kill(), 0, 'the daemon, still alive, exits cleanly');
  const disk = fs.readFileSync(img.file);
  let corrupt = 0;
  for (let s = 0; s < disk.length / 512; s++) if (inspectSector(s, disk.subarray(s * 512, s * 512 + 512)) === 'corrupt') corrupt++;
  t.equal(corrupt, 0, 'no corrupted sector in the image file');
});

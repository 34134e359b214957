// Migration rehearsals between two real qemu-storage-daemon processes serving the SAME image:
// traffic with requests in flight → stop (GET_VRING_BASE) → snapshot file → reinit on the other
// daemon (a fresh connection, SET_VRING_BASE) → traffic goes on; every request exactly once, data
// intact, also in the image file once both daemons have exited.
//
// Why sharing one image is safe: both daemons open it with locking=off and cache=writeback (the
// host page cache is the one copy of the data), and the stop lets the first daemon finish every
// request it fetched — used->idx reaches the index GET_VRING_BASE answers — before the second
// is given the rings. So the two never have a request of this driver in progress at once.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { rehearse } from '../../cli/rehearsal/engine.js';
import { inspectSector } from '../../cli/rehearsal/blk.js';
import { openTransport } from '../../lib/open.js';
import type { VhostUserTransport } from '../../lib/transport/vhost-user/transport.js';
import type { Channel } from '../../lib/transport/vhost-user/channel.js';
import { Payload, Req, stateOf } from '../../lib/transport/vhost-user/protocol.js';
import { Daemon, makeImage, type Image } from './daemon.js';

function checkImage(t: Test, img: Image, sectors: number): void {
  const disk = fs.readFileSync(img.file);
  let corrupt = 0;
  let written = 0;
  for (let s = 0; s < sectors; s++) {
    const v = inspectSector(s, disk.subarray(s * 512, s * 512 + 512));
    if (v === 'corrupt') corrupt++;
    else if (v !== 'blank') written++;
  }
  t.equal(corrupt, 0, `no corrupted sector in the image file (${written} of ${sectors} written)`);
  t.ok(written > 0, 'the rehearsal wrote to the image');
}

t.test('rehearse(): split ring, mechanism backend, ping-pong between two daemons', async (t) => {
  const img = makeImage(16);
  // Throttled so that requests are in flight inside the daemon at each stop.
  const a = await Daemon.start(img, 'a', { iops: 4000 });
  const b = await Daemon.start(img, 'b', { iops: 4000 });
  t.teardown(async () => {
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    img.remove();
  });
  const cycles: number[] = [];
  const run = rehearse({
    device: a.address, to: b.address, cycles: 6, inflight: 32, mechanism: 'backend', layout: 'split', seed: 7, requestsPerCycle: 150,
    onCycle: (c) => cycles.push(c.cycle),
  });
  // A stalled rehearsal fails here, with what it reached, instead of at tap's file timeout.
  const r = await Promise.race([run, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(
    `the rehearsal did not finish within 120 s (cycles done: ${cycles.join(', ') || 'none'}; daemon stderr: ${a.stderr}${b.stderr})`)), 120_000).unref())]);
  t.equal(r.mechanism, 'backend');
  t.equal(r.cycles, 6);
  t.same(r.requests, { ...r.requests, lost: 0, duplicated: 0, corrupted: 0 }, 'nothing lost, duplicated or corrupted');
  t.equal(r.requests.completed, r.requests.submitted, `every request completed (${r.requests.submitted})`);
  t.ok(r.cycle_reports.some((c) => c.inFlightAtStop > 0), `requests were in flight at the stops (${r.cycle_reports.map((c) => c.inFlightAtStop).join(', ')})`);
  t.same(new Set(r.cycle_reports.map((c) => c.to)), new Set([a.address, b.address]), 'each daemon served in turn');
  t.ok(r.ok, 'verdict ok');
  t.comment(`pause median ${r.pause_ms.median} ms, p99 ${r.pause_ms.p99} ms`);
  t.equal(await a.kill(), 0);
  t.equal(await b.kill(), 0);
  checkImage(t, img, 1024);
});

t.test('the CLI: uvirtio rehearse --device vhost-user:… --to vhost-user:… --mechanism backend --json', async (t) => {
  const img = makeImage(16);
  const a = await Daemon.start(img, 'a');
  const b = await Daemon.start(img, 'b');
  t.teardown(async () => {
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    img.remove();
  });
  const child = spawn(process.execPath, ['bin/uvirtio.js', 'rehearse', '--device', a.address, '--to', b.address,
    '--mechanism', 'backend', '--cycles', '4', '--inflight', '16', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const status = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(status, 0, `exit status 0 ${err}`);
  const r = JSON.parse(out) as { ok: boolean; mechanism: string; requests: { lost: number; duplicated: number; corrupted: number } };
  t.equal(r.ok, true);
  t.equal(r.mechanism, 'backend');
  t.same([r.requests.lost, r.requests.duplicated, r.requests.corrupted], [0, 0, 0]);
});

t.test('GET_VRING_BASE with requests in flight inside the daemon: stop waits for them, every request once', async (t) => {
  const img = makeImage(16);
  const a = await Daemon.start(img, 'a', { iops: 100 });
  const b = await Daemon.start(img, 'b');
  t.teardown(async () => {
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    img.remove();
  });
  const src = await openTransport(a.address);
  const blk = await BlkDriver.open(src.transport, { depth: 32 });
  const writes = Array.from({ length: 32 }, (_, i) => blk.write(i * 8, new Uint8Array(4096).fill(i + 1)));
  await new Promise((r) => setTimeout(r, 30));
  t.equal(await blk.stop({ mechanism: 'backend' }), 'backend');
  const vt = src.transport as VhostUserTransport;
  const obs = vt.stops.at(-1)!;
  t.comment(`avail published ${obs.availPublished}, used ${obs.usedBeforeSettle} at the stop; settled in ${obs.settleMs} ms; GET_VRING_BASE answered ${obs.availIdx}, used->idx ${obs.usedIdxAtReply}`);
  t.ok(obs.usedBeforeSettle < obs.availPublished, 'requests were in flight when the stop began');
  t.equal(obs.usedIdxAtReply, obs.availIdx, 'used->idx equals the available index: nothing fetched is unfinished');
  const snap = blk.snapshot();
  t.equal(snap.queues[0]!.availState, 32);
  t.equal(snap.queues[0]!.usedState, 32);
  const dst = await openTransport(b.address, { shareWith: src });
  await blk.reinit(snap, { target: dst.transport });
  await Promise.all(writes);
  await blk.write(4096, new Uint8Array(512).fill(0xee));
  t.same((await blk.read(4096, 1))[0], 0xee, 'the second daemon serves');
  await blk.close();
  src.transport.close();
  dst.transport.close();
  await a.kill();
  await b.kill();
  const disk = fs.readFileSync(img.file);
  t.ok(Array.from({ length: 32 }, (_, i) => disk[i * 4096] === i + 1 && disk[i * 4096 + 4095] === i + 1).every(Boolean), 'all 32 writes are in the image');
});

t.test('observed: qemu-storage-daemon answers GET_VRING_BASE at once and drops completions still to come', async (t) => {
  const img = makeImage(16);
  const a = await Daemon.start(img, 'a', { iops: 100 });
  t.teardown(async () => {
    await a.kill('SIGKILL');
    img.remove();
  });
  const src = await openTransport(a.address);
  const vt = src.transport as VhostUserTransport;
  const blk = await BlkDriver.open(vt, { depth: 32 });
  const writes = Array.from({ length: 32 }, (_, i) => blk.write(i * 8, new Uint8Array(4096).fill(i + 1)).catch(() => undefined));
  await new Promise((r) => setTimeout(r, 30));
  // A raw GET_VRING_BASE, without the transport's settle: what the back-end itself does.
  const ch = (vt as unknown as { link: { channel(): Channel } }).link.channel();
  const answer = stateOf({ request: Req.GET_VRING_BASE, flags: 0, payload: await ch.ask(Req.GET_VRING_BASE, Payload.state(0, 0), [8]) }).num;
  const q = blk.device.queue(0).addresses;
  const usedIdx = (): number => new DataView(vt.dma.view(q.device + 2n, 2).buffer, vt.dma.view(q.device + 2n, 2).byteOffset, 2).getUint16(0, true);
  const atReply = usedIdx();
  await new Promise((r) => setTimeout(r, 1000));
  const later = usedIdx();
  t.comment(`GET_VRING_BASE answered ${answer}; used->idx ${atReply} then, ${later} one second later; daemon stderr: ${a.stderr.trim() || '(nothing)'}`);
  t.ok(answer >= atReply, 'the answer counts every request the daemon fetched');
  await a.kill('SIGKILL');
  await Promise.all(writes);
  await blk.close();
});

// What goes wrong, and the typed error each case gives: no back-end, not a socket, the wrong
// socket type, a peer that breaks the protocol or never answers, and a back-end killed mid-I/O.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { isUvirtioError } from '../../lib/errors.js';
import { Daemon, makeImage } from './daemon.js';
import { prerequisite } from '../support/prerequisite.js';

function tempDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-vuf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return isUvirtioError(e) ? e.code : String(e);
  }
}

/** A peer in another process, as a real back-end is (hostile.test.ts has the in-process fake): `script` is its body. */
async function fakeBackend(t: Test, sock: string, script: string): Promise<ChildProcess> {
  // It says "ready" once listen(2) is done: the socket file appears at bind(2), before that, and a
  // connect in between is refused (which looked like a back-end that is not there).
  const child = spawn(process.execPath, ['-e', `const net=require('net');const s=net.createServer((c)=>{${script}});s.listen(${JSON.stringify(sock)},()=>console.log('ready'));`], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', () => reject(new Error(`the fake back-end for ${sock} exited before it listened`)));
  });
  return child;
}

t.test('no back-end: ENOENT and ECONNREFUSED are E_VHOST_UNREACHABLE with a hint', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'none.sock');
  t.equal(await code(openTransport(`vhost-user:${missing}`)), 'E_VHOST_UNREACHABLE');
  // A socket file whose listener is gone: ECONNREFUSED.
  const stale = path.join(dir, 'stale.sock');
  const child = await fakeBackend(t, stale, '');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const e = await openTransport(`vhost-user:${stale}`).catch((x: unknown) => x);
  t.equal(isUvirtioError(e) && e.code, 'E_VHOST_UNREACHABLE');
  t.match(isUvirtioError(e) && e.hint, /qemu-storage-daemon/, 'the hint says how to start a back-end');
});

const python = spawnSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).stdout.trim();

t.test('not a socket: E_VHOST_NOT_SOCKET', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, 'x');
  t.equal(await code(openTransport(`vhost-user:${file}`)), 'E_VHOST_NOT_SOCKET', 'a regular file');
});

t.test('the wrong socket type: E_VHOST_NOT_SOCKET', prerequisite(python ? false : 'python3 is needed to bind a SOCK_DGRAM socket'), async (t) => {
  const dir = tempDir(t);
  const dgram = path.join(dir, 'dgram.sock');
  const child = spawn(python, ['-c', `import socket,time\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${JSON.stringify(dgram)})\ntime.sleep(60)`], { stdio: 'ignore' });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  for (let i = 0; i < 300 && !fs.existsSync(dgram); i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(await code(openTransport(`vhost-user:${dgram}`)), 'E_VHOST_NOT_SOCKET', 'a SOCK_DGRAM socket (EPROTOTYPE)');
});

t.test('a peer that answers the wrong request: E_VHOST_PROTOCOL', async (t) => {
  const sock = path.join(tempDir(t), 'bad.sock');
  // Answers every message with a reply to request 99 carrying a u64.
  await fakeBackend(t, sock, `c.on('data',()=>{const b=Buffer.alloc(20);b.writeUInt32LE(99,0);b.writeUInt32LE(5,4);b.writeUInt32LE(8,8);c.write(b);});`);
  t.equal(await code(openTransport(`vhost-user:${sock}`)), 'E_VHOST_PROTOCOL');
});

t.test('a peer that never answers: E_VHOST_TIMEOUT, bounded', async (t) => {
  const sock = path.join(tempDir(t), 'mute.sock');
  await fakeBackend(t, sock, `c.on('data',()=>{});`);
  const t0 = Date.now();
  t.equal(await code(openTransport(`vhost-user:${sock}?timeout=300`)), 'E_VHOST_TIMEOUT');
  t.ok(Date.now() - t0 < 3000, `gave up after ${Date.now() - t0} ms`);
});

t.test('a peer that hangs up during the handshake: E_VHOST_LOST', async (t) => {
  const sock = path.join(tempDir(t), 'hup.sock');
  await fakeBackend(t, sock, `c.on('data',()=>c.destroy());`);
  t.equal(await code(openTransport(`vhost-user:${sock}`)), 'E_VHOST_LOST');
});

for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  t.test(`the daemon killed (${signal}) mid-traffic: pending requests reject with E_VHOST_LOST, bounded; no hang`, async (t) => {
    const img = makeImage(16);
    // Throttled, so requests are really in flight inside the daemon when it dies.
    const d = await Daemon.start(img, 'victim', { iops: 200 });
    t.teardown(async () => {
      await d.kill('SIGKILL');
      img.remove();
    });
    const dev = await openTransport(d.address);
    const blk = await BlkDriver.open(dev.transport, { depth: 32 });
    const results: Promise<string>[] = [];
    for (let i = 0; i < 100; i++) results.push(code(blk.write(i * 8, new Uint8Array(4096).fill(i))));
    await new Promise((r) => setTimeout(r, 60));
    const killedAt = Date.now();
    await d.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const codes = await Promise.race([
      Promise.all(results),
      new Promise<null>((r) => (timer = setTimeout(() => r(null), 5000))),
    ]);
    clearTimeout(timer);
    t.ok(codes, 'every request settled within 5 s of the kill');
    const lost = codes!.filter((c) => c === 'E_VHOST_LOST').length;
    const ok = codes!.filter((c) => c === 'resolved').length;
    t.equal(lost + ok, 100, `each request either completed (${ok}) or was rejected with E_VHOST_LOST (${lost})`);
    t.ok(lost > 0, 'requests in flight were rejected');
    t.comment(`settled ${Date.now() - killedAt} ms after the kill`);
    t.equal(await code(blk.read(0, 1)), 'E_VHOST_LOST', 'later requests are rejected at once');
    t.equal(blk.device.failure?.code, 'E_VHOST_LOST', 'the device failed with E_VHOST_LOST (it needs a reset)');
    await blk.close();
    t.pass('close() after the loss does not throw');
  });
}

t.test('the transport closed under a live polling driver with requests in flight: no crash; the memory stays until the driver lets go', async (t) => {
  const img = makeImage(16);
  const d = await Daemon.start(img, 'closed-under', { iops: 100 });
  t.teardown(async () => {
    await d.kill('SIGKILL');
    img.remove();
  });
  const dev = await openTransport(d.address);
  const blk = await BlkDriver.open(dev.transport, { interrupts: 'poll', depth: 16, requestTimeoutMs: 300 });
  const results = Array.from({ length: 16 }, (_, i) => code(blk.write(i * 8, new Uint8Array(4096).fill(i))));
  await new Promise((r) => setTimeout(r, 20));
  dev.transport.close(); // under the driver: its polling loop still reads the rings
  const codes = await Promise.all(results);
  t.ok(codes.every((c) => c === 'resolved' || c.startsWith('E_')), `every request settled (${[...new Set(codes)].join(', ')})`);
  await blk.close();
  t.pass('the process is still here: nothing read unmapped memory');
});

// Hostile inputs to the vhost-vdpa transport, on a host without a vDPA device (found by a fresh
// attempt to break it; each failed before its fix): ?arena sizes past 2 GiB, a "__proto__" option,
// a path swapped after its check, device answers out of range (GET_VQS_COUNT, GET_VRING_NUM), a
// kick after close, lookup failures named as what they are, and unbounded timeouts. A fake VdpaFd
// stands in for the device where its answers matter.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import * as libc from '../../lib/sys/libc.js';
import { parseAddress } from '../../lib/address.js';
import { VdpaFd } from '../../lib/transport/vhost-vdpa/device.js';
import { open as openVdpa } from '../../lib/transport/vhost-vdpa/open.js';
import { VhostVdpaTransport, type VhostVdpaOptions } from '../../lib/transport/vhost-vdpa/transport.js';
import { BackendFeature } from '../../lib/transport/vhost-vdpa/uapi.js';
import { VIRTIO_MSI_NO_VECTOR } from '../../lib/spec/index.js';
import { codeOf } from '../support/codes.js';
import { tempDir } from '../support/tmp.js';

const addr = (options: Record<string, string>): { address: string; target: string; options: Record<string, string> } =>
  ({ address: 'vhost-vdpa:/dev/vhost-vdpa-0', target: '/dev/vhost-vdpa-0', options });

/** A device that answers like vdpa_sim_blk, with `over` replacing some answers. */
function fakeDev(over: Record<string, unknown> = {}): VdpaFd {
  const noop = (): void => {};
  return {
    address: 'vhost-vdpa:/fake', fd: -1, isOpen: true,
    deviceId: () => 2, vqsCount: () => 1, configSize: () => 60,
    iovaRange: () => ({ first: 0n, last: 0xffff_ffff_ffff_ffffn }),
    backendFeatures: () => (1n << BigInt(BackendFeature.IOTLB_MSG_V2)) | (1n << BigInt(BackendFeature.SUSPEND)),
    setBackendFeatures: noop, iotlb: noop, status: () => 0, setStatus: noop, features: () => 0n, setFeatures: noop,
    vringNumMax: () => 256, setVringNum: noop, setVringAddr: noop, setVringBase: noop, setVringFile: noop, setVringEnable: noop,
    vringBase: () => 0, suspend: noop, resume: noop, close: noop,
    ...over,
  } as unknown as VdpaFd;
}
function withFake(over: Record<string, unknown> = {}, options: VhostVdpaOptions = { arenaBytes: 1 << 20 }): VhostVdpaTransport {
  const C = VhostVdpaTransport as unknown as new (a: string, d: VdpaFd, o: VhostVdpaOptions) => VhostVdpaTransport;
  return new C('vhost-vdpa:/fake', fakeDev(over), options);
}

t.test('?arena=2048…4096 (documented 1–4096 MiB) overflows the 32-bit shift: arenaBytes is negative or 0', async (t) => {
  const real = VhostVdpaTransport.open;
  const seen: (number | undefined)[] = [];
  VhostVdpaTransport.open = ((_a: string, _p: string, o: VhostVdpaOptions) => {
    seen.push(o.arenaBytes);
    throw new Error('stop here');
  }) as typeof real;
  try {
    for (const mib of [2048, 3000, 4096]) {
      try { openVdpa(addr({ arena: String(mib) })); } catch { /* the spy stops it */ }
    }
  } finally {
    VhostVdpaTransport.open = real;
  }
  t.same(seen, [2048 * 2 ** 20, 3000 * 2 ** 20, 4096 * 2 ** 20], 'arena=N asks for N MiB (now: -2147483648, -1149239296, 0)');
});

t.test('an option named __proto__ is an ordinary (unknown, refused) option, not dropped', async (t) => {
  t.same(Object.keys(parseAddress('vhost-vdpa:/dev/vhost-vdpa-0?__proto__=1').options), ['__proto__'], 'parseAddress keeps it');
  t.equal(codeOf(() => openVdpa(addr(parseAddress('vhost-vdpa:/dev/vhost-vdpa-0?__proto__=1').options))), 'E_BAD_ADDRESS',
    'the opener says unknown option (as for ?constructor=1)');
});

t.test('check-then-open: the object opened is not the object checked (symlink swapped after the stat)', async (t) => {
  const dir = tempDir('uvirtio-b2-');
  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, '');
  const link = path.join(dir, 'vdpa');
  fs.symlinkSync('/dev/null', link);
  // Pretend /dev/null's major (1) is vhost-vdpa, and swap the link right after the check's stat —
  // the window an attacker who controls the path (or a directory on it) races for.
  const realRead = fs.readFileSync;
  const realStat = fs.statSync;
  (fs as { readFileSync: unknown }).readFileSync = ((p: fs.PathOrFileDescriptor, o?: unknown) =>
    p === '/proc/devices' ? 'Character devices:\n  1 vhost-vdpa\n\nBlock devices:\n' : realRead(p, o as BufferEncoding)) as typeof fs.readFileSync;
  (fs as { statSync: unknown }).statSync = ((p: fs.PathLike, o?: fs.StatSyncOptions) => {
    const st = realStat(p, o);
    if (p === link) { fs.unlinkSync(link); fs.symlinkSync(victim, link); }
    return st;
  }) as typeof fs.statSync;
  let err: unknown;
  try {
    VdpaFd.open('vhost-vdpa:' + link, link).close();
  } catch (e) {
    err = e;
  } finally {
    (fs as { readFileSync: unknown }).readFileSync = realRead;
    (fs as { statSync: unknown }).statSync = realStat;
  }
  t.ok(err, 'refused');
  t.notMatch(String((err as Error)?.message), /VHOST_SET_OWNER/,
    'refused by an fstat of the opened fd, not by VHOST_SET_OWNER after a regular file (or /dev/watchdog, a tty, …) was opened O_RDWR');
});

t.test('GET_VQS_COUNT is not bounded: a device saying 0xffffffff queues is accepted (cli info: Array.from({length})', async (t) => {
  const code = codeOf(() => {
    const tr = withFake({ vqsCount: () => 0xffff_ffff });
    const n = tr.numQueues;
    tr.close();
    if (n > 0x10000) throw new Error(`numQueues ${n} accepted`);
  });
  t.not(code, 'foreign: Error: numQueues 4294967295 accepted', 'refused at open (E_DEVICE_FAULT-like) or clamped');
});

t.test('GET_VRING_NUM is not checked: 0 reads as "queue does not exist", 1000 (not a power of two) is passed on', async (t) => {
  const tr = withFake({ vringNumMax: () => 1000 });
  t.teardown(() => tr.close());
  const m = tr.queueMaxSize(0);
  t.ok(m === 0 || (m & (m - 1)) === 0, `a split ring's maximum is a power of two (got ${m})`);
});

t.test('a notifier called after close() writes 8 bytes into whatever fd took the kick eventfd\'s number', async (t) => {
  const tr = withFake();
  tr.configureQueue(0, { size: 16, vector: VIRTIO_MSI_NO_VECTOR, addresses: { desc: 0x1_0000_0000n, driver: 0x1_0000_1000n, device: 0x1_0000_2000n } });
  const kick = tr.notifier(0);
  tr.close();
  await new Promise((r) => setTimeout(r, 50));
  const dir = tempDir('uvirtio-b2-');
  const file = path.join(dir, 'innocent');
  // Take the lowest free numbers (the closed eventfds') with ordinary files.
  const fds: number[] = [];
  for (let i = 0; i < 4; i++) fds.push(fs.openSync(`${file}${i}`, 'w+'));
  let code = 'no error';
  try { kick(); } catch (e) { code = String((e as { code?: string }).code ?? e); }
  const written = fds.map((fd, i) => { fs.closeSync(fd); return fs.statSync(`${file}${i}`).size; });
  t.same(written, [0, 0, 0, 0], `no unrelated file is written by a stale kick (sizes ${written}, kick: ${code})`);
  t.equal(code, 'E_CLOSED', 'the stale kick is refused with E_CLOSED');
});

t.test('the vhost-vdpa open path says "does not exist" for an ELOOP / ENAMETOOLONG / NUL path', async (t) => {
  const dir = tempDir('uvirtio-b2-');
  fs.symlinkSync(path.join(dir, 'b'), path.join(dir, 'a'));
  fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'b'));
  for (const p of [path.join(dir, 'a'), '/tmp/' + 'x'.repeat(5000), '/dev/nu\0ll']) {
    let msg = '';
    try { VdpaFd.open('x', p); } catch (e) { msg = (e as Error).message; }
    t.notMatch(msg, /does not exist/, `${JSON.stringify(p).slice(0, 40)}: names the real fault (symlink loop, name too long, NUL)`);
  }
});

void libc;
t.test('NaN, Infinity, 0 and negative timeouts are refused by VirtioDevice before any wait (a bound that never passes)', async (t) => {
  const { BlkDriver } = await import('../../drivers/blk/index.js');
  const { openTransport } = await import('../../lib/open.js');
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 0, -5]) {
    const open = (await openTransport('sim:blk?state=suspend')).transport;
    t.equal(await BlkDriver.open(open, { resetTimeoutMs: bad }).then(() => 'opened', (e: { code?: string }) => e.code), 'E_INVALID_ARGUMENT', `resetTimeoutMs ${bad}`);
    const blk = await BlkDriver.open((await openTransport('sim:blk?state=suspend')).transport);
    t.equal(await blk.stop({ timeoutMs: bad }).then(() => 'stopped', (e: { code?: string }) => e.code), 'E_INVALID_ARGUMENT', `stop timeoutMs ${bad}`);
    t.equal(blk.device.phase, 'live', 'and nothing was stopped');
    await blk.stop();
    t.equal(await blk.reinit(blk.snapshot(), { timeoutMs: bad }).then(() => 'reinit', (e: { code?: string }) => e.code), 'E_INVALID_ARGUMENT', `reinit timeoutMs ${bad}`);
    t.equal(await blk.device.resume(bad).then(() => 'resumed', (e: { code?: string }) => e.code), 'E_INVALID_ARGUMENT', `resume timeoutMs ${bad}`);
    await blk.reinit(blk.snapshot());
    await blk.close();
  }
});

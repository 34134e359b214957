// The benchmark peers for `npm run bench:vm` (bench/vm-blk.ts), an optional initramfs part built only
// when the runner is given --peers (it adds about 105 MB, so the test tier's boots stay small):
//   /usr/local/bin/vfio-blk   bench/c/vfio-blk.c, the C polling virtio-blk driver over VFIO, built
//                             on the host with `gcc -static -O2` (host and guest are x86_64 Debian 12)
//   /usr/local/bin/fio        Debian's fio, from `apt-get download` of fio and its library packages
//                             (never installed on the host), unpacked with dpkg-deb; the libraries
//                             its ldd lists go to /opt/fio/lib (glibc's own copied from the host, to
//                             match the loader node uses), and a wrapper sets LD_LIBRARY_PATH
//   /lib/modules/...          virtio_pci and virtio_blk with their modules.dep closure, NOT loaded at
//                             boot; /etc/uvirtio/virtio-blk-modules lists them in load order, for
//                             binding one device to the kernel's virtio_blk for the fio run
//   /usr/local/bin/dpdk-testpmd  Debian's dpdk-testpmd (package dpdk-dev) for bench/vm-net.ts, from
//                             `apt-get download` like fio: its libraries (ldd, resolved package by
//                             package from the sonames it lacks) go to /opt/dpdk/lib, and only the
//                             plugins it needs for a virtio NIC over VFIO (net_virtio, mempool_ring)
//                             to /opt/dpdk/pmds, which the wrapper passes with -d (EAL would otherwise
//                             load every plugin in its build-time directory)
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { CpioWriter } from './cpio.mjs';
import { CACHE, hashOf, log, PROJECT, run, which } from './common.mjs';
import { moduleLoadOrder } from './kernel.mjs';

const DIR = path.join(CACHE, 'fio');
const C_SOURCE = path.join(PROJECT, 'bench', 'c', 'vfio-blk.c');
/** glibc's libraries must match the guest's loader (the host's, copied for node): never taken from the debs. */
const GLIBC = /^(ld-linux.*|lib(c|m|dl|pthread|rt|resolv|util|anl|mvec)\.so\.\d+)$/;

/** fio's package and its library dependencies, recursively (no perl, no python: fio's scripts are not used). */
function fioPackages() {
  const out = run('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts',
    '--no-breaks', '--no-replaces', '--no-enhances', 'fio']);
  return [...new Set(out.split('\n').filter((l) => /^(fio|lib)\S*$/.test(l) && !/perl|python/.test(l)))].sort();
}

/** Downloads and unpacks fio's packages into .cache/vm/fio/root (once); returns the root. */
function ensureFioRoot() {
  const root = path.join(DIR, 'root');
  if (fs.existsSync(path.join(DIR, 'ready'))) return root;
  const debs = path.join(DIR, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  const t0 = Date.now();
  const have = new Set(fs.readdirSync(debs).map((f) => f.split('_')[0]));
  const missing = fioPackages().filter((p) => !have.has(p));
  if (missing.length) {
    log(`apt-get download fio and ${missing.length - 1} library packages`);
    run('apt-get', ['download', '-q', ...missing], { cwd: debs });
  }
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) run('dpkg-deb', ['-x', path.join(debs, deb), root]);
  if (!fs.existsSync(path.join(root, 'usr', 'bin', 'fio'))) throw new Error('the fio package has no usr/bin/fio');
  fs.writeFileSync(path.join(DIR, 'ready'), `${new Date().toISOString()}\n`);
  log(`fio unpacked in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return root;
}

/** fio's shared libraries, resolved against the unpacked packages first, then the host. */
function fioLibraries(root) {
  const libDirs = ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu/ceph'].map((d) => path.join(root, d));
  const out = run('ldd', [path.join(root, 'usr', 'bin', 'fio')], { env: { ...process.env, LD_LIBRARY_PATH: libDirs.join(':') } });
  const libs = [];
  for (const line of out.split('\n')) {
    if (/not found/.test(line)) throw new Error(`fio needs a library no package provided: ${line.trim()}`);
    const m = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(0x/.exec(line);
    if (!m) continue;
    // glibc's own libraries from the host: they must match the guest's loader (the host's, as for node).
    const file = GLIBC.test(m[1]) ? path.join('/lib/x86_64-linux-gnu', m[1]) : m[2];
    libs.push({ name: m[1], file: fs.realpathSync(file) });
  }
  return libs;
}

const DPDK_DIR = path.join(CACHE, 'dpdk');
const TESTPMD = path.join('usr', 'bin', 'dpdk-testpmd');
/** The plugins EAL must dlopen for a virtio NIC: the PMD and the default mempool driver (ring_mp_mc). */
const DPDK_PLUGINS = ['librte_net_virtio.so.23', 'librte_mempool_ring.so.23'];
/** Packages whose name does not follow Debian's soname rule. */
const SONAME_PACKAGES = { 'libmlx5.so.1': 'ibverbs-providers', 'libmlx4.so.1': 'ibverbs-providers', 'libz.so.1': 'zlib1g',
  'libcrypto.so.3': 'libssl3', 'libssl.so.3': 'libssl3' };

/** Debian's library package for a soname: libfoo.so.N is libfooN, or libfoo-N when foo ends in a digit (policy §8.1). */
function packageOfSoname(soname) {
  if (SONAME_PACKAGES[soname]) return SONAME_PACKAGES[soname];
  const m = /^lib(.+)\.so\.(.+)$/.exec(soname);
  if (!m) throw new Error(`cannot tell the package of ${soname}`);
  const name = m[1].replace(/_/g, '-').toLowerCase();
  return /\d$/.test(name) ? `lib${name}-${m[2]}` : `lib${name}${m[2]}`;
}

function dpdkLibDirs(root) {
  return ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0'].map((d) => path.join(root, d));
}

/** ldd of testpmd and its plugins against the unpacked packages, then the host: `soname => file` or `soname => null`. */
function dpdkLdd(root) {
  const env = { ...process.env, LD_LIBRARY_PATH: dpdkLibDirs(root).join(':') };
  const pmds = path.join(root, 'usr', 'lib', 'x86_64-linux-gnu', 'dpdk', 'pmds-23.0');
  const objects = [path.join(root, TESTPMD), ...DPDK_PLUGINS.map((p) => path.join(pmds, p)).filter((f) => fs.existsSync(f))];
  const libs = new Map();
  for (const obj of objects) {
    for (const line of run('ldd', [obj], { env }).split('\n')) {
      const missing = /^\s*(\S+)\s+=>\s+not found/.exec(line);
      if (missing) libs.set(missing[1], null);
      const m = /^\s*(\S+)\s+=>\s+(\/\S+)\s+\(0x/.exec(line);
      if (m && !libs.has(m[1])) libs.set(m[1], m[2]);
    }
  }
  return libs;
}

/**
 * Downloads dpdk-dev (which holds dpdk-testpmd), the plugins' packages and, round by round, the
 * package of every library ldd still cannot find; unpacks them into .cache/vm/dpdk/root (once).
 */
function ensureDpdkRoot() {
  const root = path.join(DPDK_DIR, 'root');
  if (fs.existsSync(path.join(DPDK_DIR, 'ready'))) return root;
  const debs = path.join(DPDK_DIR, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const t0 = Date.now();
  const unpacked = new Set();
  let wanted = ['dpdk-dev', 'librte-net-virtio23', 'librte-mempool-ring23'];
  for (let round = 0; wanted.length; round++) {
    if (round > 12) throw new Error(`dpdk-testpmd still lacks libraries after 12 rounds: ${wanted.join(' ')}`);
    const have = new Set(fs.readdirSync(debs).map((f) => f.split('_')[0]));
    const missing = wanted.filter((p) => !have.has(p));
    if (missing.length) {
      log(`apt-get download ${missing.join(' ')}`);
      run('apt-get', ['download', '-q', ...missing], { cwd: debs });
    }
    for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb') && !unpacked.has(f))) {
      run('dpkg-deb', ['-x', path.join(debs, deb), root]);
      unpacked.add(deb);
    }
    if (!fs.existsSync(path.join(root, TESTPMD))) throw new Error('the dpdk-dev package has no usr/bin/dpdk-testpmd');
    const lacking = [...new Set([...dpdkLdd(root)].filter(([, file]) => file === null).map(([soname]) => packageOfSoname(soname)))];
    wanted = lacking.filter((p) => ![...unpacked].some((deb) => deb.startsWith(`${p}_`)));
    if (lacking.length && !wanted.length) throw new Error(`dpdk-testpmd needs libraries its packages did not provide: ${lacking.join(' ')}`);
  }
  fs.writeFileSync(path.join(DPDK_DIR, 'ready'), `${new Date().toISOString()}\n`);
  log(`dpdk-testpmd unpacked in ${((Date.now() - t0) / 1000).toFixed(1)} s (${unpacked.size} packages)`);
  return root;
}

/** Adds testpmd, its libraries, the plugins and the wrapper (see the header) to the peers part. */
function addDpdk(w) {
  const root = ensureDpdkRoot();
  w.file('opt/dpdk/dpdk-testpmd', path.join(root, TESTPMD), 0o755);
  for (const [soname, file] of dpdkLdd(root)) {
    if (file === null) throw new Error(`dpdk-testpmd needs ${soname}, which no package provided`);
    w.file(`opt/dpdk/lib/${soname}`, fs.realpathSync(GLIBC.test(soname) ? path.join('/lib/x86_64-linux-gnu', soname) : file), 0o755);
  }
  const pmds = path.join(root, 'usr', 'lib', 'x86_64-linux-gnu', 'dpdk', 'pmds-23.0');
  for (const p of DPDK_PLUGINS) w.file(`opt/dpdk/pmds/${p.replace(/\.so\.\d+$/, '.so')}`, fs.realpathSync(path.join(pmds, p)), 0o755);
  // EAL refuses a plugin any of whose parent directories is world-writable ("directory path / is
  // world-writable and insecure"): the initramfs root is 0777, so the wrapper takes that bit off (the VM
  // is thrown away after the run). It also creates /var/run, where EAL keeps its runtime directory.
  w.file('usr/local/bin/dpdk-testpmd', Buffer.from('#!/bin/sh\nchmod o-w / && mkdir -p /var/run || exit 1\n' +
    'LD_LIBRARY_PATH=/opt/dpdk/lib exec /opt/dpdk/dpdk-testpmd -d /opt/dpdk/pmds "$@"\n'), 0o755);
}

/** Compiles the C peer into .cache/c (git-ignored); returns its path. */
export function buildCPeer() {
  const out = path.join(PROJECT, '.cache', 'c', `vfio-blk-${hashOf(C_SOURCE)}`);
  if (!fs.existsSync(out)) {
    if (!which('gcc')) throw new Error('gcc is not installed: the C peer is built at bench time (apt-get install gcc)');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    run('gcc', ['-static', '-O2', '-Wall', '-o', out, C_SOURCE]);
  }
  return out;
}

/** The key of the peers part: what goes into it. */
export function peersKey(kernel) {
  return hashOf(kernel.version, C_SOURCE, path.join(PROJECT, 'scripts', 'vm', 'peers.mjs'));
}

/** Writes the peers part (see the header) to `file`. */
export function buildPeers(file, kernel) {
  const cPeer = buildCPeer();
  const root = ensureFioRoot();
  const w = new CpioWriter(file);
  w.file('usr/local/bin/vfio-blk', cPeer, 0o755);
  w.file('opt/fio/fio', path.join(root, 'usr', 'bin', 'fio'), 0o755);
  for (const lib of fioLibraries(root)) w.file(`opt/fio/lib/${lib.name}`, lib.file, 0o755);
  w.file('usr/local/bin/fio', Buffer.from('#!/bin/sh\nLD_LIBRARY_PATH=/opt/fio/lib exec /opt/fio/fio "$@"\n'), 0o755);
  addDpdk(w);
  const order = moduleLoadOrder(kernel.modulesDir, ['virtio_pci', 'virtio_blk']);
  for (const mod of order) w.file(`lib/modules/${kernel.version}/${mod}`, path.join(kernel.modulesDir, mod));
  w.file('etc/uvirtio/virtio-blk-modules', Buffer.from(order.map((m) => `/lib/modules/${kernel.version}/${m}\n`).join('')));
  w.close();
}

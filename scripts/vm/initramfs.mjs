// The test VM's initramfs: an uncompressed cpio in three cached parts, concatenated (the kernel
// unpacks concatenated archives in order):
//   base     busybox-static, the host's node and the libraries ldd lists, the project's production
//            node_modules, /init            (rebuilt when node, busybox, the lockfile or init change)
//   modules  the VFIO modules and their modules.dep closure, per profile (noiommu: rebuilt vfio.ko)
//   project  package.json, dist/ and bin/   (rebuilt when the built files change)
//   peers    only when asked (bench:vm): fio, the C peer, virtio_blk (scripts/vm/peers.mjs)
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { CpioWriter } from './cpio.mjs';
import { CACHE, hashOf, log, pruneCache, PROJECT, run, writeAtomic } from './common.mjs';
import { moduleLoadOrder } from './kernel.mjs';
import { buildPeers, peersKey } from './peers.mjs';

const BUSYBOX = '/bin/busybox';
const NODE = process.execPath;
const HERE = path.join(PROJECT, 'scripts', 'vm');
const DIR = path.join(CACHE, 'initrd');

function sharedLibraries(binary) {
  const libs = new Set();
  for (const line of run('ldd', [binary]).split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs];
}

/** The production dependency closure: package.json dependencies, followed through node_modules. */
function productionPackages() {
  const found = new Set();
  const visit = (pkgDir) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    for (const name of Object.keys(pkg.dependencies ?? {})) {
      const dir = path.join(PROJECT, 'node_modules', name);
      if (found.has(dir) || !fs.existsSync(dir)) continue;
      found.add(dir);
      visit(dir);
    }
  };
  visit(PROJECT);
  return [...found].sort();
}

/** koffi ships prebuilt binaries for every platform; the guest needs only linux_x64. */
function keepInNodeModules(p) {
  const m = /\/koffi\/build\/koffi\/([^/]+)/.exec(p);
  return !m || m[1] === 'linux_x64';
}

function buildBase(file) {
  const w = new CpioWriter(file);
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'root', 'etc/uvirtio', 'usr/local/bin']) w.dir(d);
  w.file('bin/busybox', BUSYBOX, 0o755);
  for (const applet of run(BUSYBOX, ['--list']).split('\n').filter(Boolean)) {
    if (applet !== 'busybox') w.symlink(`bin/${applet}`, 'busybox');
  }
  w.symlink('sbin', 'bin');
  w.file('init', path.join(HERE, 'init.sh'), 0o755);
  w.file('usr/bin/node', NODE, 0o755);
  const koffiNode = path.join(PROJECT, 'node_modules/koffi/build/koffi/linux_x64/koffi.node');
  const libs = new Set([...sharedLibraries(NODE), ...(fs.existsSync(koffiNode) ? sharedLibraries(koffiNode) : [])]);
  for (const lib of libs) w.file(lib.slice(1), fs.realpathSync(lib), 0o755);
  for (const dir of productionPackages()) {
    w.tree(`project/${path.relative(PROJECT, dir)}`, dir, keepInNodeModules);
  }
  w.close();
}

function buildModules(file, kernel, profile, vfioKo) {
  const w = new CpioWriter(file);
  const order = moduleLoadOrder(kernel.modulesDir, ['vfio-pci', 'vfio_iommu_type1']);
  const base = `lib/modules/${kernel.version}`;
  for (const mod of order) {
    const src = mod.endsWith('/vfio.ko') && vfioKo ? vfioKo : path.join(kernel.modulesDir, mod);
    w.file(`${base}/${mod}`, src);
  }
  for (const f of ['modules.dep', 'modules.alias', 'modules.symbols', 'modules.builtin', 'modules.order']) {
    if (fs.existsSync(path.join(kernel.modulesDir, f))) w.file(`${base}/${f}`, path.join(kernel.modulesDir, f));
  }
  const params = (mod) => (mod.endsWith('/vfio.ko') && profile === 'noiommu' ? ' enable_unsafe_noiommu_mode=1' : '');
  w.file('etc/uvirtio/modules', Buffer.from(order.map((m) => `${m}${params(m)}\n`).join('')));
  w.close();
}

function projectFiles() {
  return ['package.json', 'dist', 'bin'].map((p) => path.join(PROJECT, p)).filter((p) => fs.existsSync(p));
}

function buildProject(file) {
  const w = new CpioWriter(file);
  for (const p of projectFiles()) w.tree(`project/${path.relative(PROJECT, p)}`, p, (h) => !h.endsWith('.map'));
  if (fs.existsSync(path.join(PROJECT, 'bin', 'uvirtio.js'))) {
    w.file('usr/local/bin/uvirtio', Buffer.from('#!/bin/sh\nexec node /project/bin/uvirtio.js "$@"\n'), 0o755);
  }
  w.close();
}

/** A cached part: built by `build(tmpFile)` unless a file with this key exists. */
function part(name, key, build) {
  const file = path.join(DIR, `${name}-${key}.cpio`);
  if (!fs.existsSync(file)) {
    const t0 = Date.now();
    writeAtomic(file, build);
    pruneCache(DIR, `${name}-`, file);
    log(`initramfs part ${name} built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return file;
}

/**
 * Returns the initramfs for a profile, building what changed; `peers` adds the benchmark peers.
 * `modulesPart` ({ key, build(file) }) replaces the VFIO modules part (the vdpa profile's, scripts/vm/vdpa.mjs).
 */
export function ensureInitramfs(kernel, profile, vfioKo, { peers = false, modulesPart = null } = {}) {
  if (!fs.existsSync(path.join(PROJECT, 'dist'))) throw new Error('dist/ is missing: run `npm run build` first');
  const st = fs.statSync(NODE);
  const baseKey = hashOf(NODE, st.size, st.mtimeMs, fs.statSync(BUSYBOX).size, path.join(PROJECT, 'package-lock.json'),
    path.join(HERE, 'init.sh'), path.join(HERE, 'initramfs.mjs'), path.join(HERE, 'cpio.mjs'));
  const base = part('base', baseKey, buildBase);
  const stockKey = hashOf(kernel.version, profile, vfioKo ?? 'stock', path.join(HERE, 'initramfs.mjs'));
  const modKey = modulesPart ? hashOf(stockKey, modulesPart.key) : stockKey;
  const modules = part(`modules-${profile}`, modKey, modulesPart ? modulesPart.build : (f) => buildModules(f, kernel, profile, vfioKo));
  const projectKey = hashOf(...projectFiles());
  const project = part('project', projectKey, buildProject);
  const extra = peers ? [part('peers', peersKey(kernel), (f) => buildPeers(f, kernel))] : [];
  const kind = peers ? `${profile}+peers` : profile;
  const full = path.join(DIR, `initrd-${kind}-${baseKey}-${modKey}-${projectKey}${peers ? `-${peersKey(kernel)}` : ''}.cpio`);
  if (!fs.existsSync(full)) {
    writeAtomic(full, (tmp) => {
      fs.copyFileSync(base, tmp);
      for (const p of [modules, project, ...extra]) fs.appendFileSync(tmp, fs.readFileSync(p));
    });
    pruneCache(DIR, `initrd-${kind}-`, full);
  }
  return full;
}

// The guest kernel: Debian's 6.1 image (the one linux-image-amd64 depends on), fetched with
// `apt-get download`, unpacked with dpkg-deb (never installed on the host), depmod'ed, and its
// vmlinux extracted for PVH boot. Cached under .cache/vm/kernel/<version>/.
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, log, run, which } from './common.mjs';
import { extractVmlinux } from './vmlinux.mjs';

/** The kernel version to boot: UVIRTIO_VM_KERNEL, else what linux-image-amd64 depends on. */
export function kernelVersion() {
  if (process.env.UVIRTIO_VM_KERNEL) return process.env.UVIRTIO_VM_KERNEL;
  let out = '';
  try {
    out = run('apt-cache', ['depends', 'linux-image-amd64']);
  } catch {
    // no apt lists: fall back to a kernel already in the cache
  }
  const m = /Depends: linux-image-(6\.1\.0-\d+-amd64)/.exec(out);
  if (m) return m[1];
  // (6.1 only: the vdpa profile's 6.12 kernel shares the directory)
  const cached = fs.existsSync(path.join(CACHE, 'kernel')) ? fs.readdirSync(path.join(CACHE, 'kernel')).filter((v) => v.startsWith('6.1.0-')).sort() : [];
  if (cached.length) return cached[cached.length - 1];
  throw new Error('cannot tell which kernel to boot: run scripts/vm/install-deps.sh (apt-get update) first');
}

/**
 * Downloads a Debian package's .deb into .cache/vm/debs (kept across runs); returns its path. With
 * `version` (a Debian version as apt-cache madison prints it) that version exactly, else the candidate.
 */
export function downloadDeb(pkg, version) {
  const dir = path.join(CACHE, 'debs');
  fs.mkdirSync(dir, { recursive: true });
  // apt-get download names the file pkg_version_arch.deb, with an epoch's ':' written %3a.
  const prefix = version === undefined ? `${pkg}_` : `${pkg}_${version.replace(/:/g, '%3a')}_`;
  const find = () => fs.readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
  const spec = version === undefined ? pkg : `${pkg}=${version}`;
  if (!find()) {
    log(`apt-get download ${spec}`);
    run('apt-get', ['download', '-q', spec], { cwd: dir });
  }
  const f = find();
  if (!f) throw new Error(`apt-get download ${spec} left no .deb in ${dir}`);
  return path.join(dir, f);
}

/** The versions of `pkg` the apt lists hold, newest first (apt-cache madison), or [] without lists. */
export function aptVersions(pkg) {
  let out = '';
  try {
    out = run('apt-cache', ['madison', pkg]);
  } catch {
    return [];
  }
  return out.split('\n').map((line) => line.split('|').map((f) => f.trim())).filter((f) => f[0] === pkg && f[1]).map((f) => f[1]);
}

/**
 * Unpacks a kernel image package into .cache/vm/kernel/<version>/ (once). Without arguments: the 6.1
 * kernel of kernelVersion(); the vdpa profile passes its 6.12 version and image package (scripts/vm/vdpa.mjs).
 */
export function ensureKernel({ version = kernelVersion(), pkg = `linux-image-${version}` } = {}) {
  const dir = path.join(CACHE, 'kernel', version);
  const root = path.join(dir, 'root');
  const vmlinux = path.join(dir, 'vmlinux');
  if (!fs.existsSync(path.join(dir, 'ready'))) {
    const t0 = Date.now();
    const deb = downloadDeb(pkg);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    run('dpkg-deb', ['-x', deb, root]);
    run(which('depmod') ?? '/usr/sbin/depmod', ['-b', root, version]);
    extractVmlinux(path.join(root, 'boot', `vmlinuz-${version}`), vmlinux);
    fs.writeFileSync(path.join(dir, 'ready'), `${new Date().toISOString()}\n`);
    log(`kernel ${version} unpacked in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { version, root, vmlinux, modulesDir: path.join(root, 'lib', 'modules', version) };
}

/**
 * The modules to load for `names` (module names as modprobe takes them), dependencies first, as
 * paths relative to the modules directory, from modules.dep.
 */
export function moduleLoadOrder(modulesDir, names) {
  const deps = new Map();
  for (const line of fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (mod && rest !== undefined) deps.set(mod, rest.trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map();
  for (const mod of deps.keys()) byName.set(path.basename(mod).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_'), mod);
  const order = [];
  const visit = (mod) => {
    if (order.includes(mod)) return;
    for (const d of deps.get(mod) ?? []) visit(d);
    order.push(mod);
  };
  for (const n of names) {
    const mod = byName.get(n.replace(/-/g, '_'));
    if (!mod) throw new Error(`module ${n} is not in ${modulesDir}/modules.dep`);
    visit(mod);
  }
  return order;
}

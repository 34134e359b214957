// The vdpa profile (docs/test-vm.md#the-vdpa-profile): Debian's 6.12 kernel from bookworm-security
// with the kernel's vDPA simulator devices, driven through /dev/vhost-vdpa-N.
//
// Debian's 6.12 config has VDPA, VHOST_VDPA and VHOST_IOTLB as modules but not VHOST_RING (vringh)
// nor VDPA_SIM (drivers/vdpa/Kconfig: VDPA_SIM depends on RUNTIME_TESTING_MENU, selects VHOST_RING
// and IOMMU_IOVA, both of which the stock kernel satisfies: IOMMU_IOVA=y, RUNTIME_TESTING_MENU=y).
// So vringh.ko, vdpa_sim.ko, vdpa_sim_blk.ko and vdpa_sim_net.ko are built out of tree from
// linux-source-6.12 against the matching linux-headers (the noiommu profile's technique,
// scripts/vm/noiommu.mjs). Everything comes from `apt-get download` + `dpkg-deb -x` into the cache;
// nothing is installed on the host. Cached under .cache/vm/vdpa/<kernel version>/.
//
// The modules part of the initramfs carries the stock vhost_vdpa closure (vhost_iotlb, vdpa, vhost,
// irqbypass; decompressed: the 6.12 modules ship as .ko.xz and busybox insmod takes plain ELF), the
// four built modules, iproute2's `vdpa` tool with the libraries its ldd lists, and the boot-time
// set-up (scripts/vm/vdpa-setup.sh) that creates blk0, blk1, net0, net1 and writes
// /run/vdpa-devices.json. Also, not loaded unless the kernel command line has uvirtio.vduse=1: the
// stock vduse.ko and scripts/vm/vduse-blk.c (built on the host with gcc -static), which make vduse0,
// a vDPA parent without suspend.
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { CpioWriter } from './cpio.mjs';
import { CACHE, hashOf, log, PROJECT, pruneCache, run } from './common.mjs';
import { aptVersions, downloadDeb, ensureKernel, moduleLoadOrder } from './kernel.mjs';

const HERE = path.join(PROJECT, 'scripts', 'vm');
const SETUP = path.join(HERE, 'vdpa-setup.sh');
/** The opt-in parent without SUSPEND (kernel argument uvirtio.vduse=1): a VDUSE blk device. */
const VDUSE_SOURCE = path.join(HERE, 'vduse-blk.c');
/** The metapackage whose dependency names the newest 6.12 image (bookworm-security). */
const META = 'linux-image-6.12-amd64';

/**
 * Built out of tree, in load order, with the source files each needs (paths in linux-source-6.12).
 * Their `modinfo -F depends` must name only modules loaded before them (checked after the build).
 */
const BUILT = [
  { name: 'vringh', files: ['drivers/vhost/vringh.c'] },
  { name: 'vdpa_sim', files: ['drivers/vdpa/vdpa_sim/vdpa_sim.c', 'drivers/vdpa/vdpa_sim/vdpa_sim.h'] },
  { name: 'vdpa_sim_blk', files: ['drivers/vdpa/vdpa_sim/vdpa_sim_blk.c'] },
  { name: 'vdpa_sim_net', files: ['drivers/vdpa/vdpa_sim/vdpa_sim_net.c'] },
];
/** Stock modules the profile loads (their modules.dep closure comes along). */
const STOCK = ['vhost_vdpa'];

/** The 6.12 kernel version: UVIRTIO_VM_VDPA_KERNEL, else what linux-image-6.12-amd64 depends on, else the cache. */
export function vdpaKernelVersion() {
  if (process.env.UVIRTIO_VM_VDPA_KERNEL) return process.env.UVIRTIO_VM_VDPA_KERNEL;
  let out = '';
  try {
    out = run('apt-cache', ['depends', META]);
  } catch {
    // no apt lists: fall back to a kernel already in the cache
  }
  const m = /Depends: linux-image-(6\.12\.\d+\+deb\d+-amd64)\b/.exec(out);
  if (m) return m[1];
  const dir = path.join(CACHE, 'vdpa');
  const cached = fs.existsSync(dir) ? fs.readdirSync(dir).filter((v) => v.startsWith('6.12.')).sort() : [];
  if (cached.length) return cached[cached.length - 1];
  throw new Error(`cannot tell which 6.12 kernel to boot: \`apt-cache depends ${META}\` names none (run scripts/vm/install-deps.sh, which runs apt-get update)`);
}

/** The Debian package names for a 6.12 version string such as 6.12.117+deb12-amd64. */
function packagesOf(version) {
  const abi = version.replace(/-amd64$/, '');
  return {
    image: `linux-image-${version}-unsigned`,
    headers: `linux-headers-${version}`,
    common: `linux-headers-${abi}-common`,
    kbuild: `linux-kbuild-${abi}`,
    source: 'linux-source-6.12',
    iproute2: 'iproute2',
  };
}

/**
 * linux-source-6.12's .deb for exactly this kernel's upstream version (6.12.117 for
 * 6.12.117+deb12-amd64). Its name carries no ABI, and bookworm-security keeps several versions
 * whose newest may be ahead of the image linux-image-6.12-amd64 depends on (12-02: source
 * 6.12.118, image 6.12.117), so the version is chosen from apt-cache madison, not the candidate.
 */
function sourceDeb(version, pkg) {
  const upstream = version.split('+')[0];
  const match = aptVersions(pkg).find((v) => v.startsWith(`${upstream}-`));
  if (match !== undefined) {
    const deb = downloadDeb(pkg, match);
    pruneCache(path.dirname(deb), `${pkg}_`, deb); // 150 MB each: only the one in use is kept
    return deb;
  }
  // No apt lists (or none of that version): a .deb already in the cache may still be the right one.
  const cached = downloadDeb(pkg);
  if (!path.basename(cached).startsWith(`${pkg}_${upstream}-`)) {
    throw new Error(`apt offers no ${pkg} for ${upstream} (the newest it has: ${path.basename(cached)}), the source of ${version}: run apt-get update (scripts/vm/install-deps.sh) or set UVIRTIO_VM_VDPA_KERNEL to a version it has`);
  }
  return cached;
}

/** Unpacks the headers, kbuild and the needed source files, builds the BUILT modules; returns their dir. */
function buildModules(version, pkgs, dir) {
  const root = path.join(dir, 'root');
  const src = path.join(dir, 'src');
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(src, { recursive: true, force: true });
  for (const p of [pkgs.headers, pkgs.common, pkgs.kbuild]) run('dpkg-deb', ['-x', downloadDeb(p), root]);
  run('dpkg-deb', ['-x', sourceDeb(version, pkgs.source), root]);
  const headers = path.join(root, 'usr', 'src', `linux-headers-${version}`);
  const common = path.join(root, 'usr', 'src', pkgs.common);
  // The arch headers' Makefile includes the common tree by an absolute /usr/src path: point it here.
  fs.writeFileSync(path.join(headers, 'Makefile'), `include ${path.join(common, 'Makefile')}\n`);
  const tarball = path.join(root, 'usr', 'src', 'linux-source-6.12.tar.xz');
  if (!fs.existsSync(tarball)) throw new Error(`${pkgs.source} has no ${tarball}`);
  fs.mkdirSync(src, { recursive: true });
  const files = BUILT.flatMap((b) => b.files);
  run('tar', ['-xJf', tarball, '-C', src, '--strip-components=1', ...files.map((f) => `linux-source-6.12/${f}`)]);
  fs.rmSync(tarball); // 150 MB, no longer needed
  const build = path.join(dir, 'build');
  fs.rmSync(build, { recursive: true, force: true });
  fs.mkdirSync(build);
  for (const f of files) fs.copyFileSync(path.join(src, f), path.join(build, path.basename(f)));
  fs.writeFileSync(path.join(build, 'Kbuild'), [
    '# vringh and the vDPA simulators, out of tree (scripts/vm/vdpa.mjs)',
    `obj-m := ${BUILT.map((b) => `${b.name}.o`).join(' ')}`,
    '',
  ].join('\n'));
  // CONFIG_DEBUG_INFO_BTF_MODULES= : the stock config generates module BTF with pahole, which a
  // test VM does not need and the host need not have (scripts/Makefile.modfinal).
  run('make', ['-s', '-C', headers, `M=${build}`, `-j${Math.max(1, (process.env.UVIRTIO_VM_JOBS ?? 2) | 0)}`,
    'CONFIG_DEBUG_INFO_BTF_MODULES=', 'modules']);
  return build;
}

/** Checks each built module's vermagic and that its dependencies come earlier in `order` (names). */
function checkLoadOrder(build, version, order) {
  for (const b of BUILT) {
    const ko = path.join(build, `${b.name}.ko`);
    const vermagic = run('modinfo', ['-F', 'vermagic', ko]).trim().split(/\s+/)[0];
    if (vermagic !== version) throw new Error(`${b.name}.ko has vermagic ${vermagic}, not ${version}`);
    const deps = run('modinfo', ['-F', 'depends', ko]).trim().split(',').filter(Boolean);
    const at = order.indexOf(b.name);
    for (const d of deps) {
      const i = order.indexOf(d);
      if (i < 0 || i > at) throw new Error(`${b.name}.ko depends on ${d}, which is not loaded before it`);
    }
  }
}

/** Shared libraries ldd lists for `binary` (host paths); a library ldd cannot find is an error. */
function lddLibraries(binary) {
  const libs = [];
  for (const line of run('ldd', [binary]).split('\n')) {
    if (/not found/.test(line)) throw new Error(`${path.basename(binary)} needs ${line.trim()}: install it on the host (scripts/vm/install-deps.sh)`);
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.push(m[1]);
  }
  return libs;
}

/**
 * Ensures the 6.12 kernel (unpacked like the 6.1 one, .cache/vm/kernel/<version>/), the built
 * modules and the vdpa tool (.cache/vm/vdpa/<version>/). Returns { kernel, modulesPart } where
 * modulesPart = { key, build(file) } writes the profile's modules part of the initramfs.
 */
export function ensureVdpa() {
  const version = vdpaKernelVersion();
  const pkgs = packagesOf(version);
  const kernel = ensureKernel({ version, pkg: pkgs.image });
  const dir = path.join(CACHE, 'vdpa', version);
  const key = hashOf(version, BUILT, path.join(HERE, 'vdpa.mjs'));
  const ready = path.join(dir, 'ready');
  const stockOrder = moduleLoadOrder(kernel.modulesDir, STOCK);
  const names = [...stockOrder.map((m) => path.basename(m).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_')), ...BUILT.map((b) => b.name)];
  if (!fs.existsSync(ready) || fs.readFileSync(ready, 'utf8').trim() !== key) {
    const t0 = Date.now();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const build = buildModules(version, pkgs, dir);
    checkLoadOrder(build, version, names);
    fs.mkdirSync(path.join(dir, 'modules'));
    for (const b of BUILT) fs.copyFileSync(path.join(build, `${b.name}.ko`), path.join(dir, 'modules', `${b.name}.ko`));
    run('dpkg-deb', ['-x', downloadDeb(pkgs.iproute2), path.join(dir, 'iproute2')]);
    for (const d of ['root', 'src', 'build']) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
    fs.writeFileSync(ready, `${key}\n`);
    log(`vdpa modules (${BUILT.map((b) => b.name).join(', ')}) built for ${version} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const vdpaTool = ['sbin/vdpa', 'usr/sbin/vdpa', 'bin/vdpa', 'usr/bin/vdpa'].map((p) => path.join(dir, 'iproute2', p)).find((p) => fs.existsSync(p));
  if (!vdpaTool) throw new Error(`the ${pkgs.iproute2} package has no vdpa tool`);
  const vduseBlk = buildVduseBlk(dir);
  const modulesPart = {
    key: hashOf(version, key, SETUP, path.join(dir, 'modules'), vduseBlk),
    build: (file) => writeModulesPart(file, kernel, stockOrder, path.join(dir, 'modules'), vdpaTool, vduseBlk),
  };
  return { kernel, modulesPart };
}

/** Compiles scripts/vm/vduse-blk.c into the profile's cache (host and guest are x86_64 Debian 12). */
function buildVduseBlk(dir) {
  const out = path.join(dir, `vduse-blk-${hashOf(VDUSE_SOURCE)}`);
  if (!fs.existsSync(out)) {
    pruneCache(dir, 'vduse-blk-', out);
    run('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', `${out}.tmp`, VDUSE_SOURCE]);
    fs.renameSync(`${out}.tmp`, out);
  }
  return out;
}

function writeModulesPart(file, kernel, stockOrder, builtDir, vdpaTool, vduseBlk) {
  const w = new CpioWriter(file);
  const base = `lib/modules/${kernel.version}`;
  const lines = [];
  for (const mod of stockOrder) {
    const src = path.join(kernel.modulesDir, mod);
    const rel = mod.replace(/\.xz$/, '');
    w.file(`${base}/${rel}`, mod.endsWith('.xz') ? run('xz', ['-dc', src], { encoding: 'buffer' }) : src);
    lines.push(rel);
  }
  for (const b of BUILT) {
    w.file(`${base}/extra/${b.name}.ko`, path.join(builtDir, `${b.name}.ko`));
    lines.push(`extra/${b.name}.ko`);
  }
  w.file('etc/uvirtio/modules', Buffer.from(lines.map((l) => `${l}\n`).join('')));
  w.file('usr/local/bin/vdpa', vdpaTool, 0o755);
  for (const lib of lddLibraries(vdpaTool)) w.file(lib.slice(1), fs.realpathSync(lib), 0o755);
  w.file('etc/uvirtio/setup', SETUP, 0o755);
  // vduse.ko's dependencies (vhost_iotlb, vdpa) are in the vhost_vdpa closure above.
  const vduse = moduleLoadOrder(kernel.modulesDir, ['vduse']).filter((m) => !stockOrder.includes(m));
  for (const mod of vduse) {
    w.file(`${base}/${mod.replace(/\.xz$/, '')}`, mod.endsWith('.xz') ? run('xz', ['-dc', path.join(kernel.modulesDir, mod)], { encoding: 'buffer' })
      : path.join(kernel.modulesDir, mod));
  }
  w.file('etc/uvirtio/vduse-modules', Buffer.from(vduse.map((m) => `${m.replace(/\.xz$/, '')}\n`).join('')));
  w.file('usr/local/bin/vduse-blk', vduseBlk, 0o755);
  w.close();
}

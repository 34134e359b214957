// The noiommu profile's vfio.ko: Debian's kernel is built without CONFIG_VFIO_NOIOMMU, so the VFIO
// core is rebuilt out of tree from Debian's linux-source-6.1 with -DCONFIG_VFIO_NOIOMMU=1 against
// the matching linux-headers package (docs/test-vm.md). Its symbol CRCs match the stock modules, so the
// stock vfio-pci loads on top. Cached under .cache/vm/noiommu/<kernel version>/vfio.ko.
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, log, run } from './common.mjs';

const SOURCE_TAR = '/usr/src/linux-source-6.1.tar.xz';
/** The VFIO core's objects in 6.1 (drivers/vfio/Makefile: vfio-y). */
const CORE_FILES = ['vfio_main.c', 'iova_bitmap.c', 'container.c', 'vfio.h'];

export function ensureNoIommuVfio(kernel) {
  const dir = path.join(CACHE, 'noiommu', kernel.version);
  const ko = path.join(dir, 'vfio.ko');
  if (fs.existsSync(ko)) return ko;
  const headers = `/usr/src/linux-headers-${kernel.version}`;
  for (const need of [SOURCE_TAR, headers]) {
    if (!fs.existsSync(need)) throw new Error(`${need} is missing: run scripts/vm/install-deps.sh (noiommu needs linux-source-6.1 and linux-headers-${kernel.version})`);
  }
  const t0 = Date.now();
  const src = path.join(dir, 'src');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(src, { recursive: true });
  run('tar', ['-xJf', SOURCE_TAR, '-C', src, '--strip-components=3',
    ...CORE_FILES.map((f) => `linux-source-6.1/drivers/vfio/${f}`)]);
  fs.writeFileSync(path.join(src, 'Kbuild'), [
    '# vfio.ko with the no-IOMMU container model compiled in (scripts/vm/noiommu.mjs)',
    'obj-m := vfio.o',
    'vfio-y := vfio_main.o iova_bitmap.o container.o',
    'ccflags-y := -DCONFIG_VFIO_NOIOMMU=1',
    '',
  ].join('\n'));
  run('make', ['-s', '-C', headers, `M=${src}`, `-j${Math.max(1, (process.env.UVIRTIO_VM_JOBS ?? 2) | 0)}`, 'modules']);
  fs.copyFileSync(path.join(src, 'vfio.ko'), ko);
  log(`vfio.ko with CONFIG_VFIO_NOIOMMU built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return ko;
}

// Host-side check of lib/sys's VFIO ABI against the C compiler: every struct's size and field
// offsets/widths, every ioctl number, and the _IO/_IOR/_IOW/_IOWR encoding, using the host's own
// <linux/vfio.h> and <linux/ioctl.h>. Skips when no C compiler or header is installed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { IO, IOR, IOW, IOWR } from '../../lib/sys/ioctl.js';
import { allLayouts, VfioIoctl } from '../../lib/sys/vfio-uapi.js';
import { prerequisite } from '../support/prerequisite.js';

const WIDTH = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 } as const;

function cProgram(): string {
  const lines: string[] = [];
  for (const l of allLayouts) {
    lines.push(`printf("%s\\t%zu\\n", "${l.cName}", sizeof(${l.cName}));`);
    for (const f of Object.keys(l.fields)) {
      lines.push(`printf("%s\\t%zu %zu\\n", "${l.cName}.${f}", offsetof(${l.cName}, ${f}), sizeof(((${l.cName} *)0)->${f}));`);
    }
  }
  for (const name of Object.keys(VfioIoctl)) lines.push(`printf("VFIO_${name}\\t%lu\\n", (unsigned long)VFIO_${name});`);
  for (const [m, args] of [['_IO', "'x', 1"], ['_IOR', "'x', 2, int"], ['_IOW', "'T', 3, long long"], ['_IOWR', "';', 250, char[100]"]]) {
    lines.push(`printf("${m}\\t%lu\\n", (unsigned long)${m}(${args}));`);
  }
  return `#include <stdio.h>\n#include <stddef.h>\n#include <linux/ioctl.h>\n#include <linux/vfio.h>\nint main(void) {\n${lines.join('\n')}\nreturn 0;\n}\n`;
}

function compileAndRun(): Map<string, number[]> | string {
  const cc = spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).stdout.trim();
  if (!cc) return 'no C compiler (apt-get install gcc)';
  if (!fs.existsSync('/usr/include/linux/vfio.h')) return 'no /usr/include/linux/vfio.h (apt-get install linux-libc-dev)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-layout-'));
  try {
    fs.writeFileSync(path.join(dir, 'l.c'), cProgram());
    const build = spawnSync(cc, ['-o', path.join(dir, 'l'), path.join(dir, 'l.c')], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(build.stderr);
    const out = spawnSync(path.join(dir, 'l'), { encoding: 'utf8' }).stdout;
    return new Map(out.trim().split('\n').map((line) => {
      const [key, nums] = line.split('\t');
      return [key!, (nums ?? '').split(' ').map(Number)];
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const c = compileAndRun();
t.test('VFIO struct layouts and ioctl numbers match <linux/vfio.h>', prerequisite(typeof c === 'string' && c), async (t) => {
  const facts = c as Map<string, number[]>;
  for (const l of allLayouts) {
    t.equal(l.size, facts.get(l.cName)?.[0], `sizeof(${l.cName})`);
    for (const [name, f] of Object.entries(l.fields)) {
      t.same([f.offset, WIDTH[f.type]], facts.get(`${l.cName}.${name}`), `${l.cName}.${name}: offset and width`);
    }
  }
  for (const [name, value] of Object.entries(VfioIoctl)) t.equal(value, facts.get(`VFIO_${name}`)?.[0], `VFIO_${name}`);
  t.equal(IO('x', 1), facts.get('_IO')?.[0], "_IO('x', 1)");
  t.equal(IOR('x', 2, 4), facts.get('_IOR')?.[0], "_IOR('x', 2, int)");
  t.equal(IOW('T', 3, 8), facts.get('_IOW')?.[0], "_IOW('T', 3, long long)");
  t.equal(IOWR(';', 250, 100), facts.get('_IOWR')?.[0], "_IOWR(';', 250, char[100])");
});

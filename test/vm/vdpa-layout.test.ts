// Host-side check of lib/transport/vhost-vdpa/uapi.ts against the C compiler and the host's own
// <linux/vhost.h> / <linux/vhost_types.h> (like test/vm/layout.test.ts for VFIO): every struct's
// size and field offsets/widths, every ioctl number and backend feature bit the host header
// defines (an older header lacks the newest; #ifdef skips those, and the test names them). The
// values of Linux 6.12 itself are in test/unit/vhost-vdpa-uapi.test.ts. Skips without a compiler
// or the header.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { allVdpaLayouts, BackendFeature, VdpaIoctl } from '../../lib/transport/vhost-vdpa/uapi.js';
import { prerequisite } from '../support/prerequisite.js';

const WIDTH = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 } as const;
/** Our field names that are not the C member's: vhost_msg_v2's union member. */
const MEMBER: Record<string, string> = { iova: 'iotlb.iova', size: 'iotlb.size', uaddr: 'iotlb.uaddr', perm: 'iotlb.perm', iotlbType: 'iotlb.type' };
/** Our request names → the header's macro names. */
const macro = (name: string): string => ['GET_FEATURES', 'SET_FEATURES', 'SET_OWNER', 'SET_VRING_NUM', 'SET_VRING_ADDR', 'SET_VRING_BASE',
  'GET_VRING_BASE', 'SET_VRING_KICK', 'SET_VRING_CALL', 'SET_BACKEND_FEATURES', 'GET_BACKEND_FEATURES'].includes(name) ? `VHOST_${name}` : `VHOST_VDPA_${name}`;

function cProgram(): string {
  const lines: string[] = [];
  for (const l of allVdpaLayouts) {
    lines.push(`printf("%s\\t%zu\\n", "${l.cName}", sizeof(${l.cName}));`);
    for (const f of Object.keys(l.fields)) {
      const m = l.cName === 'struct vhost_msg_v2' ? (MEMBER[f] ?? f) : f;
      lines.push(`printf("%s\\t%zu %zu\\n", "${l.cName}.${f}", offsetof(${l.cName}, ${m}), sizeof(((${l.cName} *)0)->${m}));`);
    }
  }
  for (const name of Object.keys(VdpaIoctl)) lines.push(`#ifdef ${macro(name)}\nprintf("${name}\\t%lu\\n", (unsigned long)${macro(name)});\n#endif`);
  for (const name of Object.keys(BackendFeature)) lines.push(`#ifdef VHOST_BACKEND_F_${name}\nprintf("F_${name}\\t%lu\\n", (unsigned long)VHOST_BACKEND_F_${name});\n#endif`);
  return `#include <stdio.h>\n#include <stddef.h>\n#include <linux/vhost.h>\nint main(void) {\n${lines.join('\n')}\nreturn 0;\n}\n`;
}

function compileAndRun(): Map<string, number[]> | string {
  const cc = spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).stdout.trim();
  if (!cc) return 'no C compiler (apt-get install gcc)';
  if (!fs.existsSync('/usr/include/linux/vhost.h')) return 'no /usr/include/linux/vhost.h (apt-get install linux-libc-dev)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-vdpa-layout-'));
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
t.test('vhost-vdpa struct layouts, ioctl numbers and backend features match <linux/vhost.h>', prerequisite(typeof c === 'string' && c), async (t) => {
  const facts = c as Map<string, number[]>;
  for (const l of allVdpaLayouts) {
    t.equal(l.size, facts.get(l.cName)?.[0], `sizeof(${l.cName})`);
    for (const [name, f] of Object.entries(l.fields)) {
      t.same([f.offset, WIDTH[f.type]], facts.get(`${l.cName}.${name}`), `${l.cName}.${name}: offset and width`);
    }
  }
  const absent: string[] = [];
  for (const [name, value] of Object.entries(VdpaIoctl)) {
    if (facts.has(name)) t.equal(value, facts.get(name)?.[0], `${macro(name)} = 0x${value.toString(16)}`);
    else absent.push(macro(name));
  }
  for (const [name, value] of Object.entries(BackendFeature)) {
    if (facts.has(`F_${name}`)) t.equal(value, facts.get(`F_${name}`)?.[0], `VHOST_BACKEND_F_${name} = ${value}`);
    else absent.push(`VHOST_BACKEND_F_${name}`);
  }
  t.ok(facts.has('GET_DEVICE_ID') && facts.has('GET_VRING_BASE') && facts.has('F_IOTLB_MSG_V2'), 'the host header has the vhost-vdpa requests at all');
  t.comment(`not in the host's header (newer than it; checked against 6.12 in the unit tier): ${absent.join(', ') || 'none'}`);
});

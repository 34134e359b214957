// lib/sys/socket.ts's struct layouts (msghdr, iovec, cmsghdr, sockaddr_un) and constants against
// the C compiler's sizeof/offsetof on the host's own headers; skips without a C compiler.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CmsghdrLayout, IovecLayout, MsghdrLayout, SockaddrUnLayout, SUN_PATH_OFFSET, cmsgSpace, MSG, POLL } from '../../lib/sys/socket.js';
import { MFD_CLOEXEC } from '../../lib/sys/libc.js';
import { prerequisite } from '../support/prerequisite.js';

const layouts = [MsghdrLayout, IovecLayout, CmsghdrLayout, SockaddrUnLayout];
const WIDTH = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 } as const;
const constants: Record<string, number> = {
  'offsetof(struct sockaddr_un, sun_path)': SUN_PATH_OFFSET,
  'CMSG_SPACE(4)': cmsgSpace(4), 'CMSG_SPACE(32)': cmsgSpace(32), 'CMSG_LEN(12)': CmsghdrLayout.size + 12,
  MSG_DONTWAIT: MSG.DONTWAIT, MSG_NOSIGNAL: MSG.NOSIGNAL,
  POLLIN: POLL.IN, POLLHUP: POLL.HUP, POLLRDHUP: POLL.RDHUP, MFD_CLOEXEC, SOL_SOCKET: 1, SCM_RIGHTS: 1, AF_UNIX: 1, SOCK_STREAM: 1,
};

function program(): string {
  const lines: string[] = [];
  for (const l of layouts) {
    lines.push(`printf("%s\\t%zu\\n", "${l.cName}", sizeof(${l.cName}));`);
    for (const f of Object.keys(l.fields)) {
      lines.push(`printf("%s\\t%zu %zu\\n", "${l.cName}.${f}", offsetof(${l.cName}, ${f}), sizeof(((${l.cName} *)0)->${f}));`);
    }
  }
  for (const k of Object.keys(constants)) lines.push(`printf("%s\\t%lu\\n", "${k}", (unsigned long)(${k}));`);
  return `#define _GNU_SOURCE\n#include <stdio.h>\n#include <stddef.h>\n#include <poll.h>\n#include <sys/socket.h>\n#include <sys/un.h>\n#include <sys/uio.h>\n#include <sys/mman.h>\nint main(void) {\n${lines.join('\n')}\nreturn 0;\n}\n`;
}

function facts(): Map<string, number[]> | string {
  const cc = spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).stdout.trim();
  if (!cc) return 'no C compiler (apt-get install gcc)';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-socklayout-'));
  try {
    fs.writeFileSync(path.join(dir, 'l.c'), program());
    const build = spawnSync(cc, ['-o', path.join(dir, 'l'), path.join(dir, 'l.c')], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(build.stderr);
    const out = spawnSync(path.join(dir, 'l'), { encoding: 'utf8' }).stdout;
    return new Map(out.trim().split('\n').map((line) => {
      const [k, v] = line.split('\t');
      return [k!, (v ?? '').split(' ').map(Number)];
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const f = facts();
t.test('socket struct layouts and constants match the C headers', prerequisite(typeof f === 'string' && f), async (t) => {
  const m = f as Map<string, number[]>;
  for (const l of layouts) {
    t.equal(l.size, m.get(l.cName)?.[0], `sizeof(${l.cName})`);
    for (const [name, field] of Object.entries(l.fields)) {
      t.same([field.offset, WIDTH[field.type]], m.get(`${l.cName}.${name}`), `${l.cName}.${name}: offset and width`);
    }
  }
  for (const [k, v] of Object.entries(constants)) t.equal(v, m.get(k)?.[0], k);
});

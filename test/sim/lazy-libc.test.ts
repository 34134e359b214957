// sim: users never load koffi, and nothing dlopens libc, whatever they import: a child process
// imports the built package entry (dist/index.js) — and the VFIO and vhost-user modules besides —
// opens sim:blk and does I/O; then it looks for koffi among the loaded modules (require's cache)
// and the native module among its mappings (/proc/self/maps). A second child calls into lib/sys
// and must show both, so the check is one that can fail.

import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve('dist');
const url = (p: string) => pathToFileURL(join(dist, p)).href;

/** What the child prints after its work: whether koffi is loaded, by either measure. */
const PROBE = `
  const { createRequire } = await import('node:module');
  const { readFileSync } = await import('node:fs');
  const cache = Object.keys(createRequire(import.meta.url).cache);
  const maps = readFileSync('/proc/self/maps', 'utf8');
  probe.koffiRequired = cache.some((k) => /[\\\\/]koffi[\\\\/]/.test(k));
  probe.koffiMapped = /koffi.*\\.node$/m.test(maps);
  console.log(JSON.stringify(probe));
`;

function child(t: Test, body: string) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const probe = {};\n${body}\n${PROBE}`], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
}

t.test('the package entry, sim:blk and I/O: koffi never loaded, libc never dlopened', async (t) => {
  const out = child(t, `
    const m = await import(${JSON.stringify(url('index.js'))});
    // The classes that do use libc, imported but not used: importing must cost nothing.
    await import(${JSON.stringify(url('lib/vfio/index.js'))});
    await import(${JSON.stringify(url('lib/transport/vhost-user/transport.js'))});
    await import(${JSON.stringify(url('lib/sys/socket.js'))});
    const opened = await m.openTransport('sim:blk?capacity=64');
    const blk = await m.BlkDriver.open(opened.transport);
    const data = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
    await blk.write(8, data);
    const back = await blk.read(8, 8);
    probe.same = Buffer.compare(Buffer.from(back), Buffer.from(data)) === 0;
    await blk.close();
  `);
  t.same(out, { same: true, koffiRequired: false, koffiMapped: false });
});

t.test('control: the first libc call loads koffi (so the probe above can see it)', async (t) => {
  const out = child(t, `
    const libc = await import(${JSON.stringify(url('lib/sys/libc.js'))});
    probe.page = libc.pageSize() > 0;
  `);
  t.same(out, { page: true, koffiRequired: true, koffiMapped: true });
});

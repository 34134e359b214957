// Breaker 30: an unusable session runtime directory (UVIRTIO_RUNTIME_DIR naming a regular file,
// a path under a file, or set but empty) makes every session command fail with Node's raw errno
// text and the hint "this is a bug in uvirtio; run again with --debug and report the stack trace",
// exit 3. The same function refuses a directory of another user cleanly (E_INVALID_ARGUMENT, a
// hint to set UVIRTIO_RUNTIME_DIR, exit 2): a bad runtime directory is the user's input, exit 2
// with a uvirtio code (README: "2 bad usage or input"), not a bug report.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const work = tempDir('uvirtio-rtdir-');
const file = join(work, 'a-file');
writeFileSync(file, 'not a directory\n');

function uv(runtime: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000, cwd: work, env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const [what, runtime] of [['a regular file', file], ['a path under a regular file', join(file, 'sub')], ['set but empty', '']] as const) {
  t.test(`UVIRTIO_RUNTIME_DIR ${what}: a uvirtio error, exit 2, not "a bug in uvirtio"`, async (t) => {
    for (const args of [['status'], ['stop'], ['attach', 'sim:blk']]) {
      const r = uv(runtime, ...args);
      t.equal(r.status, 2, `uvirtio ${args.join(' ')}: ${r.stderr.trim()}`);
      t.match(r.stderr, /^uvirtio: E_[A-Z_]+: /, 'one line with a uvirtio code');
      t.notMatch(r.stderr, /this is a bug in uvirtio/, 'not reported as a bug');
    }
  });
}

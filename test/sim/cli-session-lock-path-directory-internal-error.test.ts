// Breaker 30c: a directory where a session lock belongs (NAME.agent, or the device's lock at
// lockPath — a stray `mkdir`, a restored backup) makes `attach` fail as uvirtio's own bug:
// "E_INTERNAL: session agent: Path is a directory: rm returned EISDIR … this is a bug in uvirtio",
// exit 3. takeLock() gets EEXIST from the O_EXCL create, cannot read a holder (EISDIR), and its
// rmSync(path, { force: true }) throws ERR_FS_EISDIR, which nothing types. Expected: a typed
// refusal naming the path (E_SESSION_EXISTS or E_INVALID_ARGUMENT, exit 2: something in the
// runtime directory that is not uvirtio's lock), never E_INTERNAL, and nothing left running.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';
import { lockPath, nameLockPath } from '../../cli/session/paths.js';

t.setTimeout(30_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const runtime = tempDir('uvirtio-lockdir-rt-');

function uv(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 15_000, killSignal: 'SIGKILL', env: { ...process.env, UVIRTIO_RUNTIME_DIR: runtime } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const [what, path] of [['the session name\'s lock', nameLockPath(runtime, 'd')], ['the device\'s lock', lockPath(runtime, 'sim:blk')]] as const)
t.test(`a directory at ${what}: attach is refused with a typed error, not E_INTERNAL`, async (t) => {
  mkdirSync(path);
  t.teardown(() => {
    uv('detach', '--session', 'd');
    rmSync(path, { recursive: true, force: true });
  });
  const a = uv('attach', 'sim:blk', '--name', 'd');
  t.comment(`attach: status ${a.status}: ${a.stderr.trim()}`);
  t.notMatch(a.stderr, /E_INTERNAL|bug in uvirtio/, 'not reported as a bug in uvirtio');
  t.equal(a.status, 2, 'exit 2: something in the runtime directory, not the device');
  t.match(a.stderr, /E_SESSION_EXISTS|E_INVALID_ARGUMENT/, 'a typed refusal');
});

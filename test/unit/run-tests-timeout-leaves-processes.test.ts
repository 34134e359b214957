// Breaker 29 (FAILS at 35ae123): scripts/run-tests.mjs (`npm test`) ends a file past its bound
// with SIGTERM then SIGKILL to the file's process only (child.kill), in the runner's own process
// group. A process the hung file started (a QEMU, a daemon, a CLI call) is not signalled: it is
// left running after the runner has printed its summary and exited — on CI, for ever, holding its
// devices/sockets and CPU. What should happen: the file runs in a process group of its own and the
// bound's SIGTERM/SIGKILL go to that group, so nothing the file started outlives the runner.
// (The runner's bounds are shortened in the copy: unit 3 s, kill grace 2 s.)

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.cwd();
t.setTimeout(90_000);

t.test('a file that hangs past its bound and ignores SIGTERM: nothing it started outlives the runner', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'uvirtio-runner-'));
  const pidFile = join(dir, 'grandchild.pid');
  t.teardown(() => {
    if (existsSync(pidFile)) { try { process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL'); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
  });
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'dist', 'test', 'unit'), { recursive: true });
  const script = readFileSync(join(root, 'scripts', 'run-tests.mjs'), 'utf8')
    .replace("{ name: 'unit', needs: [], timeout: 120 }", "{ name: 'unit', needs: [], timeout: 3 }")
    .replace('const KILL_GRACE_MS = 30_000;', 'const KILL_GRACE_MS = 2_000;');
  t.match(script, /timeout: 3 \}/, 'the copy has the short bound');
  writeFileSync(join(dir, 'scripts', 'run-tests.mjs'), script);
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'h.test.js'), [
    "import t from 'tap';",
    "import { spawn } from 'node:child_process';",
    "process.on('SIGTERM', () => {});",
    `spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); require("fs").writeFileSync(${JSON.stringify(pidFile)}, String(process.pid))'], { stdio: 'ignore' });`,
    "t.test('hangs', () => new Promise(() => { setInterval(() => {}, 1000); }));",
  ].join('\n'));

  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TAP')) delete env[k];
  const out = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [join(dir, 'scripts', 'run-tests.mjs'), 'unit'], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 60_000);
    child.on('exit', () => { clearTimeout(timer); resolve(out); });
  });
  t.match(out, /^not ok - dist\/test\/unit\/h\.test\.js/m, 'the hung file is failed');
  t.ok(existsSync(pidFile), 'the file started its process');
  await new Promise((r) => setTimeout(r, 300));
  let alive = false;
  try { process.kill(Number(readFileSync(pidFile, 'utf8')), 0); alive = true; } catch { /* gone */ }
  t.notOk(alive, 'the process the hung file started is not left running after the runner exited');
});

// Breaker 29 (FAILS at 35ae123): scripts/run-tests.mjs (`npm test`) spawns each test file in the
// runner's own process group (spawn without `detached`). A test file that signals its process
// group — process.kill(0, sig), or a helper that cleans up with kill(-pgid) of its own group
// (e.g. a test that starts a QEMU or daemon and kills "its group" on teardown) — kills the runner
// too (and npm, and whatever else shares the group): no verdict for the file, the later files of
// the tier never run, and no `N passed, N failed, N skipped` line. The exit status is 137 with
// nothing said. What should happen: each file runs in a group of its own (and a timed-out file's
// whole group is signalled); a file that kills its group counts as failed, the next file runs,
// and the summary line is printed.
//
// The runner is started here in a process group of its own, so the bug kills only it and the
// file, not this test.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.cwd();
t.setTimeout(90_000);

t.test('a test file that kills its own process group: the runner survives, fails that file, runs the next, prints the summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'uvirtio-runner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'dist', 'test', 'unit'), { recursive: true });
  writeFileSync(join(dir, 'scripts', 'run-tests.mjs'), readFileSync(join(root, 'scripts', 'run-tests.mjs'), 'utf8'));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'a.test.js'), "import t from 'tap';\nt.pass('before');\nprocess.kill(0, 'SIGKILL');\n");
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'b.test.js'), "import t from 'tap';\nt.pass('b ran');\n");

  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TAP')) delete env[k];
  const { out, code, signal } = await new Promise<{ out: string; code: number | null; signal: string | null }>((resolve) => {
    // detached: its own process group, so a group kill from the file cannot reach this test.
    const child = spawn(process.execPath, [join(dir, 'scripts', 'run-tests.mjs'), 'unit'], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 60_000);
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ out, code, signal }); });
  });
  t.equal(signal, null, `the runner is not killed by the file's group signal (it ended by ${signal ?? `exit ${code}`})`);
  t.match(out, /^not ok - dist\/test\/unit\/a\.test\.js/m, 'the file that killed its group is failed');
  t.match(out, /^ok - dist\/test\/unit\/b\.test\.js/m, 'the next file still runs');
  t.match(out, /^\d+ passed, [1-9]\d* failed, \d+ skipped$/m, 'the summary line CI reads is printed');
  t.equal(code, 1, 'the runner exits 1');
});

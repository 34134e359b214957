// scripts/run-tests.mjs (`npm test`, f93685d/b533112) reads each file's counts from tap's root
// summary and bounds each file at the tier's timeout + 30 s. Two ways it was wrong (found by breaker 26,
// fixed), and a third case: a tier with no test files built counted as nothing, not as a failure:
//
// 1. tap prints the summary as Counts.toJSON(): total, pass, fail, todo, skip — todo BEFORE skip.
//    The runner's regex expects skip before todo, so a file with a todo and a skipped test is
//    counted with 0 skipped (the summary line CI reads undercounts skips).
// 2. The verdict waits for 'close' (both pipes ended), not for the file's process: a process the
//    file started that inherited its stdout/stderr (cli-snapshot-file.test.ts starts one with
//    stderr inherited) and outlives it keeps the runner waiting for as long as it lives — past the
//    file's bound (the SIGTERM/SIGKILL at timeout + 30 s hit the file's process, already gone), for
//    ever for a process that never ends. CI hangs instead of reporting.
//
// Each case runs a copy of the runner in a temporary project whose dist/test/unit holds one file.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.cwd();
// The second case waits up to 50 s for a runner that may not end (tap's default bound is 30 s).
t.setTimeout(120_000);

/** A temporary project: the runner (optionally edited), node_modules, and one unit test file. */
function project(t: { teardown(fn: () => unknown): void }, test: string, edit: (s: string) => string = (s) => s): string {
  const dir = mkdtempSync(join(tmpdir(), 'uvirtio-runner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'dist', 'test', 'unit'), { recursive: true });
  writeFileSync(join(dir, 'scripts', 'run-tests.mjs'), edit(readFileSync(join(root, 'scripts', 'run-tests.mjs'), 'utf8')));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'x.test.js'), test);
  return dir;
}

/** Runs the runner's unit tier in `dir`; resolves with its output, or 'HANG' after ms. */
function runner(dir: string, ms: number): Promise<{ out: string; hung: boolean }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('TAP')) delete env[k];
    const child = spawn(process.execPath, [join(dir, 'scripts', 'run-tests.mjs'), 'unit'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ out, hung: true });
    }, ms);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ out, hung: false });
    });
  });
}

t.test('a file with a skipped test and a todo: the summary counts both as skipped', async (t) => {
  const dir = project(t, [
    "import t from 'tap';",
    "t.test('a', async (t) => { t.pass('ok'); });",
    "t.test('b', { skip: 'not here' }, async () => {});",
    "t.test('c', { todo: 'later' }, async () => {});",
  ].join('\n'));
  const { out, hung } = await runner(dir, 60_000);
  t.notOk(hung, 'the runner ends');
  t.match(out, /^ {4}# \{ total: 3, pass: 1, todo: 1, skip: 1 \}$/m, "tap's own summary (echoed indented): 1 skipped (todo printed before skip)");
  t.match(out, /^1 passed, 0 failed, 2 skipped$/m, 'the summary CI reads counts the skip and the todo (a known open fault) as skipped, never as passed');
});

t.test("a process the file started holds its stdout after the file exited: the runner still ends within the file's bound", async (t) => {
  const pidFile = join(tmpdir(), `uvirtio-runner-grandchild-${process.pid}`);
  t.teardown(() => {
    // End the process the test file left behind (its pid, written by the file).
    if (existsSync(pidFile)) {
      try { process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL'); } catch { /* gone */ }
      rmSync(pidFile, { force: true });
    }
  });
  // The unit tier's timeout cut to 1 s in the copy: the file's bound is then 1 + 30 s.
  const dir = project(t, [
    "import t from 'tap';",
    "import { spawn } from 'node:child_process';",
    "import { writeFileSync } from 'node:fs';",
    "t.test('passes, and leaves a process holding stdout and stderr', async (t) => {",
    "  const c = spawn('sleep', ['75'], { stdio: ['ignore', 'inherit', 'inherit'], detached: true });",
    `  writeFileSync(${JSON.stringify(pidFile)}, String(c.pid));`,
    '  c.unref();',
    "  t.pass('ok');",
    '});',
  ].join('\n'), (s) => s.replace("{ name: 'unit', needs: [], timeout: 120 }", "{ name: 'unit', needs: [], timeout: 1 }"));
  t.match(readFileSync(join(dir, 'scripts', 'run-tests.mjs'), 'utf8'), "{ name: 'unit', needs: [], timeout: 1 }", 'the copy has the 1 s tier timeout');
  const started = Date.now();
  const { out, hung } = await runner(dir, 50_000);
  t.notOk(hung, `the runner ended (after ${((Date.now() - started) / 1000).toFixed(1)} s; the file's bound is 31 s, the left-behind process lives 75 s)`);
  t.match(out, /^\d+ passed, \d+ failed, \d+ skipped$/m, 'and printed the summary CI reads');
});

t.test('a tier with no test files built fails, it does not pass silently', async (t) => {
  const dir = project(t, "import t from 'tap';\nt.pass('never run');\n");
  rmSync(join(dir, 'dist', 'test', 'unit', 'x.test.js'));
  const { out, hung } = await runner(dir, 60_000);
  t.notOk(hung, 'the runner ends');
  t.match(out, /^tier unit: FAILED — no test files in dist\/test\/unit/m, 'the tier says why');
  t.match(out, /^0 passed, 1 failed, 0 skipped$/m, 'and the summary CI reads counts it as a failure');
});

// A failed file used to be named in the summary with nothing else: CI keeps the end of a long log,
// so what failed (which assertion, found / wanted) was lost when only the tail was kept.
t.test("a failed file: the summary at the end repeats its failed assertions with their diagnostics", async (t) => {
  const dir = project(t, [
    "import t from 'tap';",
    "t.test('group', async (t) => {",
    "  t.pass('fine');",
    "  t.equal(3, 4, 'three is four');",
    '});',
    "t.ok(true, 'outer');",
  ].join('\n'));
  const { out, hung } = await runner(dir, 60_000);
  t.notOk(hung, 'the runner ends');
  const summary = out.slice(out.lastIndexOf('tier unit:'));
  t.match(summary, /^ {2}failed: dist\/test\/unit\/x\.test\.js$/m, 'the file is named');
  t.match(summary, /^ {4}not ok 2 - three is four$/m, 'its failed assertion is repeated under it');
  // tap prints found / wanted as a diff; its lines are kept, indented under the assertion.
  t.match(summary, /^ {6}diff: \|\n {8}--- expected\n {8}\+\+\+ actual\n {8}@@ -1,1 \+1,1 @@\n {8}-4\n {8}\+3$/m, 'with its diff: wanted 4, found 3');
  t.match(summary, /^ {6}stack: \|\n {8}.*x\.test\.js:4:5\)?$/m, 'and where, the first line of its stack');
  t.notMatch(summary, /source:/, "the source excerpt is left to the full log");
  t.notMatch(summary, /fine|outer/, 'passed assertions are not repeated');
  t.match(out, /^1 passed, 1 failed, 0 skipped$|^2 passed, 1 failed, 0 skipped$/m, 'the counts line is still last');
});

// The sim tier runs the two fault-fuzzer halves side by side (each mostly waits on its deadlines).
// Two files of one group must really run together, both be counted, and their output must not
// interleave; a failure in one must still fail the run.
t.test('files of a side-by-side group run together, are each counted, and their output stays whole', async (t) => {
  /** A file that says it started, then waits (at most 20 s) until its partner said so too. */
  const file = (me: string, partner: string, pass: boolean): string => [
    "import t from 'tap';",
    "import { writeFileSync, existsSync } from 'node:fs';",
    "import { join } from 'node:path';",
    `t.test('${me}', async (t) => {`,
    `  writeFileSync(join(process.cwd(), '${me}.started'), '');`,
    '  const until = Date.now() + 20_000;',
    `  while (!existsSync(join(process.cwd(), '${partner}.started')) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));`,
    `  for (let i = 0; i < 50; i++) { console.log('# ${me} line ' + i); console.error('${me} err ' + i); await new Promise((r) => setImmediate(r)); }`,
    `  t.ok(existsSync(join(process.cwd(), '${partner}.started')), '${me}: ${partner} ran at the same time');`,
    `  t.ok(${pass}, '${me} verdict');`,
    '});',
  ].join('\n');
  const dir = project(t, file('x', 'y', true), (s) => s.replace("{ name: 'unit', needs: [], timeout: 120 }", "{ name: 'unit', needs: [], timeout: 120, sideBySide: [['x.test.js', 'y.test.js']] }"));
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'y.test.js'), file('y', 'x', false));
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'z.test.js'), "import t from 'tap';\nt.pass('alone');\n");
  const { out, hung } = await runner(dir, 60_000);
  t.notOk(hung, 'the runner ends');
  t.match(out, /^# side by side: dist\/test\/unit\/x\.test\.js, dist\/test\/unit\/y\.test\.js$/m, 'the runner says which files run together');
  for (const me of ['x', 'y']) {
    const lines = out.split('\n').filter((l) => / # [xy] line \d+$/.test(l));
    const mine = lines.map((l, i) => (l.includes(`# ${me} line`) ? i : -1)).filter((i) => i >= 0);
    t.equal(mine.length, 50, `${me}: all of its output is echoed`);
    t.equal(mine.at(-1)! - mine[0]!, 49, `${me}: its lines come in one block, not interleaved with its partner's`);
    // Its stderr too (a stack trace, a warning): before, stderr was echoed as it came, so the two
    // files' traces mixed line by line.
    const errLines = out.split('\n').filter((l) => /^[xy] err \d+$/.test(l));
    const myErr = errLines.map((l, i) => (l.startsWith(`${me} err`) ? i : -1)).filter((i) => i >= 0);
    t.equal(myErr.length, 50, `${me}: all of its stderr is echoed`);
    t.equal(myErr.at(-1)! - myErr[0]!, 49, `${me}: its stderr comes in one block`);
  }
  t.match(out, /^ok - dist\/test\/unit\/x\.test\.js/m, 'x passed (its partner started while it waited)');
  t.match(out, /^not ok - dist\/test\/unit\/y\.test\.js/m, 'y failed by its own assertion');
  t.match(out, /^ {2}failed: dist\/test\/unit\/y\.test\.js$/m, 'the summary names the failed file of the group');
  t.match(out, /^ok - dist\/test\/unit\/z\.test\.js/m, 'the file outside the group ran too');
  t.match(out, /^4 passed, 1 failed, 0 skipped$/m, 'every file is counted once: x 2, y 1 of 2, z 1');
});

// tsc never deletes an output: a test renamed, deleted, or absent on the branch checked out leaves
// its compiled file in dist/test, and the runner ran it (the old test, against today's code) as if
// it were one of the tier's tests.
t.test('a compiled test whose source is gone (renamed, deleted, another branch) is not run', async (t) => {
  const dir = project(t, "import t from 'tap';\nt.pass('x runs');\n");
  writeFileSync(join(dir, 'dist', 'test', 'unit', 'gone.test.js'), "import t from 'tap';\nt.fail('a test deleted from the sources ran');\n");
  mkdirSync(join(dir, 'test', 'unit'), { recursive: true });
  writeFileSync(join(dir, 'test', 'unit', 'x.test.ts'), '// the source of x.test.js\n');
  const { out, hung } = await runner(dir, 60_000);
  t.notOk(hung, 'the runner ends');
  t.notMatch(out, /gone\.test\.js.*# time/, 'the orphan was not run');
  t.match(out, /dist\/test\/unit\/gone\.test\.js.*no source/, 'the runner says it left it out, and why');
  t.match(out, /^1 passed, 0 failed, 0 skipped$/m, 'only the test with a source counts');
});

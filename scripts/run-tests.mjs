#!/usr/bin/env node
// `npm test`: runs every test tier (tap test files, each as its own Node process) over the built
// JavaScript in dist/test/<tier>/.
//
// A tier whose system prerequisite is missing is skipped with the reason printed; with
// UVIRTIO_REQUIRE_ALL=1 such a skip counts as a failure (CI sets it). The last line is
// `N passed, N failed, N skipped` (tap assertions; a skipped tier counts once).
//
//   npm test                 every tier
//   npm test -- unit sim     only the named tiers

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout, clearTimeout } from 'node:timers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const requireAll = process.env.UVIRTIO_REQUIRE_ALL === '1';

/**
 * Each tier: its folder, what it needs from the system, its per-file timeout (seconds), and the
 * groups of its files that run side by side (every other file runs alone, one after the other).
 *
 * Side by side only for files that mostly wait (on timers, on the device's deadlines) and own no
 * shared resource: the two fault-fuzzer halves each use about half a core (measured on this
 * 2-core machine: 97 s each one after the other, 103 s for both side by side).
 */
const TIERS = [
  { name: 'unit', needs: [], timeout: 120 },
  { name: 'sim', needs: [], timeout: 600, sideBySide: [['fuzz-a.test.js', 'fuzz-b.test.js']] },
  { name: 'vhost-user', needs: [{ cmd: 'qemu-storage-daemon', pkg: 'qemu-system-common' }], timeout: 300 },
  { name: 'vm', needs: [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }], timeout: 1200 },
];

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * The tier's compiled test files. tsc never deletes an output: a test renamed, deleted, or absent
 * from the branch checked out leaves its .js in dist/test, so where the sources are present
 * (test/<tier>/), a compiled test without its .ts is left out (and said so), not run as the old
 * test against today's code.
 */
function testFiles(tier) {
  const dir = join(root, 'dist', 'test', tier);
  if (!existsSync(dir)) return [];
  const sources = join(root, 'test', tier);
  const checked = existsSync(sources);
  const files = [];
  for (const f of readdirSync(dir).filter((name) => name.endsWith('.test.js')).sort()) {
    if (checked && !existsSync(join(sources, f.replace(/\.js$/, '.ts')))) {
      console.log(`# left out: dist/test/${tier}/${f} has no source (test/${tier}/${f.replace(/\.js$/, '.ts')} is gone): not run; delete it`);
      continue;
    }
    files.push(join('dist', 'test', tier, f));
  }
  return files;
}

/**
 * Runs each test file as its own Node process, one after the other, echoing its TAP output, and
 * sums the pass / fail / skip counts of the `# { total, pass, … }` line tap's root test prints last.
 *
 * Why not `tap FILES`: tap's runner starts every test process with its coverage recorder
 * (`--import @tapjs/processinfo/import`, kept even with --disable-coverage) and puts it in
 * NODE_OPTIONS, so every Node process a test spawns (each CLI call, each rehearsal) loads it too:
 * about 0.5 s per process here. Measured on this machine: sim/cli-inputs.test.js 46.2 s through
 * `tap`, 18.5 s as `node FILE`. The files are still tap tests (`npx tap FILE` runs any of them).
 *
 * Bounds: tap's root test fails itself after TAP_TIMEOUT seconds (set to the tier's timeout); a
 * file still running KILL_GRACE_MS after that is sent SIGTERM, then SIGKILL, and counts as failed;
 * once the file's process exited, its output is waited for at most PIPE_GRACE_MS.
 */
const KILL_GRACE_MS = 30_000;
/**
 * How long the output pipes may stay open after the file's process exited, in ms: a process the
 * file started and left behind can hold them (inherited stdout/stderr) for as long as it lives.
 * After this the runner closes its ends and goes on (and says so); the file's verdict stands.
 */
const PIPE_GRACE_MS = 5_000;

/**
 * The counts of tap's root summary, `# { total: N, pass: N, … }`: the last one printed at the
 * start of a line (a test's own output can hold text that looks like one). The fields come in
 * whatever order tap prints them (it prints todo before skip); todo is counted as skipped; null when
 * there is none.
 */
function tapSummary(output) {
  const line = [...output.matchAll(/^# \{ (total: \d+(?:, \w+: \d+)*) \}/gm)].at(-1);
  if (!line) return null;
  const counts = Object.fromEntries(line[1].split(', ').map((kv) => kv.split(': ')).map(([k, v]) => [k, Number(v)]));
  // A todo (a known fault, not yet fixed) proves nothing: it counts among the skipped, never the passed.
  return { pass: counts.pass ?? 0, fail: counts.fail ?? 0, skip: (counts.skip ?? 0) + (counts.todo ?? 0) };
}

/** At most this many lines of failed assertions (with their diagnostics) are repeated per failed file in the summary. */
const FAILURE_LINES = 40;

/** Keys of a failure's YAML block left out of the summary: long, and in the full log above. */
const FAILURE_KEYS_LEFT_OUT = new Set(['at', 'source', 'compare']);

/**
 * Keeps the failed assertions of a file's TAP output, each `not ok` line with the YAML block that
 * follows it (diff, found / wanted, message, the first line of the stack; not the source excerpt),
 * so the summary at the end of a long log says what failed, not only where. Indentation inside a
 * block is kept relative to its `not ok` line; at most FAILURE_LINES lines per file.
 */
function failureCollector() {
  const kept = [];
  let partial = '';
  let block = null; // { indent, skipping, stackLines } while inside the YAML block of a kept `not ok`
  let more = 0;
  const keep = (line) => (kept.length < FAILURE_LINES ? kept.push(line) : more++);
  return {
    push(text) {
      const all = (partial + text).split('\n');
      partial = all.pop() ?? '';
      for (const line of all) {
        const indent = line.length - line.trimStart().length;
        const trimmed = line.trim();
        if (/^not ok \d+/.test(trimmed)) {
          block = { indent, open: false, skipping: false, stackLines: 0 };
          keep(trimmed);
        } else if (block && !block.open) {
          block = trimmed === '---' ? { ...block, open: true } : null;
        } else if (block) {
          if (trimmed === '...') {
            block = null;
            continue;
          }
          const rel = line.slice(Math.min(indent, block.indent + 2));
          const key = indent === block.indent + 2 ? /^([\w-]+):/.exec(trimmed)?.[1] : undefined;
          if (key !== undefined) {
            block.skipping = FAILURE_KEYS_LEFT_OUT.has(key);
            block.stackLines = key === 'stack' ? 1 : 0;
            if (!block.skipping) keep(`  ${rel}`);
          } else if (!block.skipping && (block.stackLines === 0 || block.stackLines++ < 2)) {
            keep(`  ${rel}`);
          }
        }
      }
    },
    lines() {
      return more > 0 ? [...kept, `(${more} more lines of failures in the log above)`] : kept;
    },
  };
}

/** The files running now (their process groups), so a Ctrl-C or kill of the runner ends them too. */
const running = new Set();

/** Sends `signal` to the file's whole process group (it and every process it started); quiet when gone. */
function signalGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    for (const child of running) signalGroup(child, 'SIGKILL');
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

/**
 * Runs one test file. Its TAP output is echoed (indented) as it comes, or, with `buffered` (files
 * running side by side), all at once when it ends so that two files' lines never interleave; its
 * stderr likewise, after its TAP output.
 */
function runFile(file, timeoutSec, buffered = false) {
  return new Promise((resolve) => {
    const started = Date.now();
    // Its own process group: a file that signals its group (process.kill(0, …)) cannot take the
    // runner with it, and the bounds below end every process the file started.
    const child = spawn(process.execPath, ['--enable-source-maps', file], {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0', TAP_TIMEOUT: String(timeoutSec) },
    });
    running.add(child);
    let tail = '';
    let echo = '';
    let echoErr = '';
    const failures = failureCollector();
    let killedBy = null;
    let exited = null; // { code, signal } once the file's process has exited
    let pipesHeld = false;
    child.stdout.on('data', (chunk) => {
      const indented = chunk.toString().replace(/^(?=.)/gm, '    ');
      if (buffered) echo += indented;
      else process.stdout.write(indented);
      tail = (tail + chunk.toString()).slice(-4000);
      failures.push(chunk.toString());
    });
    child.stderr.on('data', (chunk) => {
      if (buffered) echoErr += chunk.toString();
      else process.stderr.write(chunk);
    });
    const term = setTimeout(() => {
      killedBy = `still running ${KILL_GRACE_MS / 1000} s after its ${timeoutSec} s timeout`;
      signalGroup(child, 'SIGTERM');
      setTimeout(() => signalGroup(child, 'SIGKILL'), 5_000).unref();
    }, timeoutSec * 1000 + KILL_GRACE_MS);
    let pipeTimer;
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      clearTimeout(term);
      pipeTimer = setTimeout(() => {
        pipesHeld = true;
        child.stdout.destroy();
        child.stderr.destroy();
        settle();
      }, PIPE_GRACE_MS);
    });
    child.on('close', () => settle());
    let settled = false;
    function settle() {
      if (settled || exited === null) return;
      settled = true;
      clearTimeout(pipeTimer);
      running.delete(child);
      if (echo !== '') process.stdout.write(echo);
      if (echoErr !== '') process.stderr.write(echoErr);
      signalGroup(child, 'SIGKILL'); // what the file started and left in its group ends with it
      const { code, signal } = exited;
      const seconds = (Date.now() - started) / 1000;
      const summary = tapSummary(tail);
      const r = summary ?? { pass: 0, fail: 0, skip: 0 };
      let why = null;
      if (killedBy) why = killedBy;
      else if (!summary) why = `no tap summary (exit ${code ?? signal})`; // a crash: nothing was proven
      else if (code !== 0 && r.fail === 0) why = `exit ${code ?? signal} without a failed assertion`;
      if (why !== null && r.fail === 0) r.fail = 1;
      const notes = [why, pipesHeld ? `a process it started still held its output ${PIPE_GRACE_MS / 1000} s after it exited; not waited for` : null].filter(Boolean);
      console.log(`${r.fail > 0 ? 'not ok' : 'ok'} - ${file} # time=${seconds.toFixed(1)}s${notes.length ? ` (${notes.join('; ')})` : ''}`);
      resolve({ ...r, file, seconds, failures: r.fail > 0 ? failures.lines() : [] });
    }
  });
}

/**
 * Runs the files in turn, each group of `sideBySide` (base names) together at the place of its
 * first file; resolves with the summed counts and each failed file's name.
 */
async function runFiles(files, timeoutSec, sideBySide = []) {
  const sum = { pass: 0, fail: 0, skip: 0, failedFiles: [] };
  const add = (r) => {
    sum.pass += r.pass;
    sum.fail += r.fail;
    sum.skip += r.skip;
    if (r.fail > 0) sum.failedFiles.push({ file: r.file, failures: r.failures });
  };
  const done = new Set();
  for (const file of files) {
    if (done.has(file)) continue;
    const group = sideBySide.find((g) => g.some((name) => file.endsWith(`/${name}`)));
    const together = group ? files.filter((f) => group.some((name) => f.endsWith(`/${name}`))) : [file];
    for (const f of together) done.add(f);
    if (together.length > 1) console.log(`# side by side: ${together.join(', ')}`);
    const results = await Promise.all(together.map((f) => runFile(f, timeoutSec, together.length > 1)));
    for (const r of results) add(r);
  }
  return sum;
}

async function main() {
  const wanted = process.argv.slice(2);
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const lines = [];
  for (const tier of TIERS) {
    if (wanted.length > 0 && !wanted.includes(tier.name)) continue;
    const files = testFiles(tier.name);
    if (files.length === 0) {
      // Every tier has tests: none built means the build did not run or lost them, not a pass.
      totals.failed++;
      lines.push(`tier ${tier.name}: FAILED — no test files in dist/test/${tier.name} (run \`npm run build\` first)`);
      continue;
    }
    const missing = tier.needs.filter((n) => !onPath(n.cmd));
    if (missing.length > 0) {
      const reason = missing.map((n) => `${n.cmd} not found (apt-get install ${n.pkg})`).join('; ');
      if (requireAll) {
        totals.failed++;
        lines.push(`tier ${tier.name}: FAILED — skipped but UVIRTIO_REQUIRE_ALL=1: ${reason}`);
      } else {
        totals.skipped++;
        lines.push(`tier ${tier.name}: SKIPPED — ${reason}`);
      }
      console.log(`\n=== tier ${tier.name}: skipped: ${reason}`);
      continue;
    }
    console.log(`\n=== tier ${tier.name}: ${files.length} file(s)`);
    const started = Date.now();
    const r = await runFiles(files, tier.timeout, tier.sideBySide);
    totals.passed += r.pass;
    totals.failed += r.fail;
    totals.skipped += r.skip;
    lines.push(`tier ${tier.name}: ${r.pass} passed, ${r.fail} failed, ${r.skip} skipped (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    for (const f of r.failedFiles) {
      lines.push(`  failed: ${f.file}`);
      for (const l of f.failures) lines.push(`    ${l}`);
    }
  }
  console.log('\n' + lines.join('\n'));
  console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
}

await main();

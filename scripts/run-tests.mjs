#!/usr/bin/env node
// `npm test`: runs every test tier with tap, over the built JavaScript in dist/test/<tier>/.
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

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const requireAll = process.env.UVIRTIO_REQUIRE_ALL === '1';

/** Each tier: its folder, what it needs from the system, and tap's per-file timeout (seconds). */
const TIERS = [
  { name: 'unit', needs: [], timeout: 120 },
  { name: 'sim', needs: [], timeout: 600 },
  { name: 'vhost-user', needs: [{ cmd: 'qemu-storage-daemon', pkg: 'qemu-system-common' }], timeout: 300 },
  { name: 'vm', needs: [{ cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }], timeout: 1200 },
];

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function testFiles(tier) {
  const dir = join(root, 'dist', 'test', tier);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => join('dist', 'test', tier, f));
}

/** Runs tap on the files, echoing its output; resolves with the counts of its summary line. */
function runTap(files, timeout) {
  return new Promise((resolve) => {
    const tap = join(root, 'node_modules', '.bin', 'tap');
    const child = spawn(tap, ['--disable-coverage', `--timeout=${timeout}`, '--jobs=1', ...files], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' },
    });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    });
    child.on('close', (code) => {
      const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/.exec(tail);
      const total = m ? Number(m[1]) : 0;
      const pass = m ? Number(m[2] ?? 0) : 0;
      let fail = m ? Number(m[3] ?? 0) : 0;
      const skip = m ? Number(m[4] ?? 0) : 0;
      // A tap run that exits non-zero without counting a failure (a crash, a timeout) still failed.
      if (code !== 0 && fail === 0) fail = 1;
      if (!m && code === 0) fail = 1; // no summary: nothing was proven
      resolve({ total, pass, fail, skip });
    });
  });
}

async function main() {
  const wanted = process.argv.slice(2);
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const lines = [];
  for (const tier of TIERS) {
    if (wanted.length > 0 && !wanted.includes(tier.name)) continue;
    const files = testFiles(tier.name);
    if (files.length === 0) continue; // the tier has no tests yet
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
    const r = await runTap(files, tier.timeout);
    totals.passed += r.pass;
    totals.failed += r.fail;
    totals.skipped += r.skip;
    lines.push(`tier ${tier.name}: ${r.pass} passed, ${r.fail} failed, ${r.skip} skipped (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
  console.log('\n' + lines.join('\n'));
  console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
  process.exitCode = totals.failed > 0 ? 1 : 0;
}

await main();

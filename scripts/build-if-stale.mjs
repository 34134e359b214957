#!/usr/bin/env node
// `npm install` (prepare) and `npm test` (pretest): builds dist/ with `tsc -p tsconfig.json` unless
// it is already up to date, which a full build takes ~20 s to find out. `npm run build` (--always)
// always builds.
//
// Up to date means: the last build succeeded (tsc exited 0: it left dist/.build-ok, removed before
// every build), no source file tsconfig.json names (TypeScript's own reading of its include list),
// nor tsconfig.json, package.json or package-lock.json, changed after it, and every source has its
// compiled .js under dist/ at the same relative path. Anything else — a failed build (tsc emits
// even with type errors), an edited source, a changed config, a deleted output — runs the full
// build. tsc's --incremental was not used: it trusts its .tsbuildinfo and does not emit an output
// file deleted after the last build.
//
// Why it matters: `npx uvirtio` in a checkout makes npm run `prepare` again (npm 11 links the
// local package into its npx cache); without this check that is a second full build, and a
// Ctrl-C during it leaves npm's cache entry broken.

import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Left in dist/ by a build whose tsc exited 0, dated when that build started. */
const stamp = join(root, 'dist', '.build-ok');

/** Modification time in ms, or -1 when the file does not exist. */
function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** The first reason dist/ is not up to date, or null when it is. */
function staleReason() {
  const configPath = join(root, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, ts.sys.readFile);
  if (read.error) return 'tsconfig.json does not parse';
  const config = ts.parseJsonConfigFileContent(read.config, ts.sys, root);
  if (config.errors.length > 0) return 'tsconfig.json has errors';
  const outDir = config.options.outDir ?? join(root, 'dist');
  const rootDir = config.options.rootDir ?? root;
  const built = mtime(stamp);
  if (built < 0) return `no successful build recorded (${relative(root, stamp)} is missing)`;
  for (const file of ['tsconfig.json', 'package.json', 'package-lock.json']) {
    if (mtime(join(root, file)) > built) return `${file} changed since the last build`;
  }
  const sources = config.fileNames.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  if (sources.length === 0) return 'tsconfig.json names no sources';
  for (const source of sources) {
    if (mtime(source) > built) return `${relative(root, source)} changed since the last build`;
    const out = join(outDir, relative(rootDir, source)).replace(/\.ts$/, '.js');
    if (mtime(out) < 0) return `${relative(root, out)} is missing`;
  }
  return null;
}

const why = process.argv.includes('--always') ? 'asked to (--always)' : staleReason();
if (why === null) {
  console.log('build: dist/ is up to date (scripts/build-if-stale.mjs; `npm run build` rebuilds anyway)');
} else {
  console.log(`build: ${why}; building (tsc -p tsconfig.json)`);
  rmSync(stamp, { force: true });
  const started = Date.now(); // the stamp is dated when tsc started: a source edited during the build is newer
  const r = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.resolve('typescript'))), '..', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (r.status === 0) {
    mkdirSync(dirname(stamp), { recursive: true });
    writeFileSync(stamp, `built ${new Date(started).toISOString()}\n`);
    utimesSync(stamp, started / 1000, started / 1000);
  }
  process.exitCode = r.status ?? 1;
}

#!/usr/bin/env node
// `npm install` (prepare) and `npm test` (pretest): builds dist/ with `tsc -p tsconfig.json` unless
// it is already up to date, which a full build takes ~20 s to find out. `npm run build` (--always)
// always builds.
//
// Up to date means: the last build succeeded (tsc exited 0: it left dist/.build-ok, removed before
// every build), the sources tsconfig.json names (TypeScript's own reading of its include list) and
// tsconfig.json (and every configuration it extends), package.json and package-lock.json have the
// contents they had when that build started (the stamp holds a SHA-256 of each, so a file put back
// with an older date — a backup moved over it, cp -p, tar x — counts as changed, and a touched but
// unchanged one does not), and
// every source has its compiled .js (and .d.ts with `declaration`) under dist/ at the same relative
// path. Anything else — a failed build (tsc emits even with type errors), an edited, added or
// removed source, a changed config, a deleted output — runs the full build. tsc's --incremental
// was not used: it trusts its .tsbuildinfo and does not emit an output file deleted after the last
// build.
//
// Why it matters: `npx uvirtio` in a checkout makes npm run `prepare` again (npm 11 links the
// local package into its npx cache); without this check that is a second full build, and a
// Ctrl-C during it leaves npm's cache entry broken.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Left in dist/ by a build whose tsc exited 0: the digests of its inputs as they were when it started. */
const stamp = join(root, 'dist', '.build-ok');

/** SHA-256 of a file's contents (hex), or null when it cannot be read (absent). */
function digest(file) {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}

/**
 * What a build reads: tsconfig.json's reading (or why it cannot be read) and the digest of each
 * input by path relative to the root — tsconfig.json, every configuration it extends (TypeScript
 * records the chain it followed), package.json, package-lock.json and every source it names.
 */
function inputs() {
  const configPath = join(root, 'tsconfig.json');
  const source = ts.readJsonConfigFile(configPath, ts.sys.readFile);
  if (source.parseDiagnostics?.length > 0) return { error: 'tsconfig.json does not parse' };
  const config = ts.parseJsonSourceFileConfigFileContent(source, ts.sys, root, undefined, configPath);
  if (config.errors.length > 0) return { error: 'tsconfig.json has errors' };
  const sources = config.fileNames.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  if (sources.length === 0) return { error: 'tsconfig.json names no sources' };
  const files = {};
  const configs = [configPath, ...(source.extendedSourceFiles ?? [])];
  for (const file of [...configs, join(root, 'package.json'), join(root, 'package-lock.json')]) files[relative(root, file)] = digest(file);
  for (const source of sources) files[relative(root, source)] = digest(source);
  return { config, sources, files };
}

/** The first reason dist/ is not up to date, or null when it is. */
function staleReason() {
  const now = inputs();
  if (now.error) return now.error;
  let recorded;
  try {
    recorded = JSON.parse(readFileSync(stamp, 'utf8')).files;
  } catch {
    recorded = undefined;
  }
  if (typeof recorded !== 'object' || recorded === null) return `no successful build recorded (${relative(root, stamp)} is missing or unreadable)`;
  for (const [file, hash] of Object.entries(now.files)) {
    if (!(file in recorded)) return `${file} is new since the last build`;
    if (recorded[file] !== hash) return `${file} changed since the last build`;
  }
  for (const file of Object.keys(recorded)) if (!(file in now.files)) return `${file} is no longer a source`;
  const { options } = now.config;
  const outDir = options.outDir ?? root;
  const rootDir = options.rootDir ?? root;
  for (const source of now.sources) {
    const base = join(outDir, relative(rootDir, source)).replace(/\.ts$/, '');
    for (const out of [`${base}.js`, ...(options.declaration ? [`${base}.d.ts`] : [])]) {
      if (!existsSync(out)) return `${relative(root, out)} is missing`;
    }
  }
  return null;
}

const why = process.argv.includes('--always') ? 'asked to (--always)' : staleReason();
if (why === null) {
  console.log('build: dist/ is up to date (scripts/build-if-stale.mjs; `npm run build` rebuilds anyway)');
} else {
  console.log(`build: ${why}; building (tsc -p tsconfig.json)`);
  rmSync(stamp, { force: true });
  // Read before tsc starts: a source edited during the build differs from its recorded digest.
  const before = inputs();
  const r = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.resolve('typescript'))), '..', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (r.status === 0 && !before.error) {
    mkdirSync(dirname(stamp), { recursive: true });
    writeFileSync(stamp, `${JSON.stringify({ files: before.files }, null, 1)}\n`);
  }
  process.exitCode = r.status ?? 1;
}

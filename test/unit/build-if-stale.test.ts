// scripts/build-if-stale.mjs (prepare, pretest): skips tsc only when dist/ is up to date. Each case
// runs a copy of the script in a temporary project of two sources; a wrong "up to date" would run
// the tests (or `npx uvirtio`) on old or missing JavaScript, so every way of being stale is tried.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = process.cwd();
t.setTimeout(120_000);

function project(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'uvirtio-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  mkdirSync(join(dir, 'src'));
  copyFileSync(join(root, 'scripts', 'build-if-stale.mjs'), join(dir, 'scripts', 'build-if-stale.mjs'));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', target: 'ES2022', strict: true, outDir: 'dist', rootDir: '.', types: [], skipLibCheck: true, lib: ['ES5'] }, include: ['src/**/*.ts'] }));
  writeFileSync(join(dir, 'src', 'a.ts'), 'export const a: number = 1;\n');
  writeFileSync(join(dir, 'src', 'b.ts'), "import { a } from './a.js';\nexport const b = a + 1;\n");
  // Inputs dated well before any build: a later date alone (touch() below) is told from an edit.
  for (const f of ['package.json', 'tsconfig.json', 'src/a.ts', 'src/b.ts']) utimesSync(join(dir, f), Date.now() / 1000 - 1000, Date.now() / 1000 - 1000);
  return dir;
}

/** Runs the script; its first line of output and exit status. */
function build(dir: string, ...args: string[]): { line: string; status: number | null } {
  const r = spawnSync(process.execPath, [join(dir, 'scripts', 'build-if-stale.mjs'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { line: (r.stdout.split('\n')[0] ?? '').trim(), status: r.status };
}

/** A later date on a file; its contents unchanged. */
const touch = (file: string): void => utimesSync(file, Date.now() / 1000, Date.now() / 1000);

t.test('first build, then up to date, and --always builds anyway', async (t) => {
  const dir = project(t);
  t.match(build(dir), { line: /^build: no successful build recorded .*building/, status: 0 });
  t.ok(existsSync(join(dir, 'dist', 'src', 'b.js')), 'built');
  t.match(build(dir), { line: /^build: dist\/ is up to date/, status: 0 });
  t.match(build(dir, '--always'), { line: /^build: asked to \(--always\); building/, status: 0 });
});

t.test('an edited source, a changed lock file, a deleted output: each rebuilds', async (t) => {
  const dir = project(t);
  build(dir);
  touch(join(dir, 'src', 'a.ts'));
  t.match(build(dir), { line: /^build: dist\/ is up to date/ }, 'touched, same contents: nothing to rebuild');
  writeFileSync(join(dir, 'src', 'a.ts'), 'export const a: number = 2;\n');
  t.match(build(dir), { line: /^build: src\/a\.ts changed since the last build; building/, status: 0 });
  // tsconfig.json, package.json and package-lock.json go through the same check: one of them here.
  writeFileSync(join(dir, 'package-lock.json'), '{}\n');
  t.match(build(dir), { line: /^build: package-lock\.json changed since the last build; building/, status: 0 });
  rmSync(join(dir, 'dist', 'src', 'b.js'));
  t.match(build(dir), { line: /^build: dist\/src\/b\.js is missing; building/, status: 0 });
  t.ok(existsSync(join(dir, 'dist', 'src', 'b.js')), 'the deleted output is back (tsc --incremental would not emit it)');
  t.match(build(dir), { line: /^build: dist\/ is up to date/ });
});

t.test('a build that fails (tsc emits anyway) is not taken for up to date', async (t) => {
  const dir = project(t);
  build(dir);
  writeFileSync(join(dir, 'src', 'a.ts'), "export const a: number = 'not a number';\n");
  touch(join(dir, 'src', 'a.ts'));
  const failed = build(dir);
  t.not(failed.status, 0, 'the type error fails the build');
  t.ok(existsSync(join(dir, 'dist', 'src', 'a.js')), 'tsc still wrote its output');
  t.match(build(dir), { line: /^build: no successful build recorded .*building/ }, 'the next run builds again (and fails again), it does not skip');
  t.not(build(dir).status, 0);
});

t.test('a source put back with an older date (a backup moved over it, cp -p, tar x, rsync -t) rebuilds', async (t) => {
  const dir = project(t);
  build(dir);
  // A backup of a.ts with other content, dated before the last build: moved over a.ts it keeps that date.
  writeFileSync(join(dir, 'src', 'a.ts.orig'), 'export const a: number = 41;\n');
  utimesSync(join(dir, 'src', 'a.ts.orig'), Date.now() / 1000 - 500, Date.now() / 1000 - 500);
  renameSync(join(dir, 'src', 'a.ts.orig'), join(dir, 'src', 'a.ts'));
  t.match(build(dir), { line: /^build: src\/a\.ts changed since the last build; building/, status: 0 });
  t.match(readFileSync(join(dir, 'dist', 'src', 'a.js'), 'utf8'), /41/, 'dist/ has the source as it is now');
  t.match(build(dir), { line: /^build: dist\/ is up to date/ });
});

t.test('a deleted declaration output (declaration: true) rebuilds', async (t) => {
  const dir = project(t);
  const config = JSON.parse(readFileSync(join(dir, 'tsconfig.json'), 'utf8'));
  config.compilerOptions.declaration = true;
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(config));
  build(dir);
  t.ok(existsSync(join(dir, 'dist', 'src', 'b.d.ts')), 'built with declarations');
  rmSync(join(dir, 'dist', 'src', 'b.d.ts'));
  t.match(build(dir), { line: /^build: dist\/src\/b\.d\.ts is missing; building/, status: 0 });
  t.ok(existsSync(join(dir, 'dist', 'src', 'b.d.ts')), 'the deleted declaration is back');
});

// The stamp held tsconfig.json's digest only: a setting moved into a base configuration it extends
// (a shared tsconfig.base.json, as monorepos and forks do) changed the build without a rebuild.
t.test('a change in a configuration tsconfig.json extends rebuilds; a broken tsconfig.json is said so', async (t) => {
  const dir = project(t);
  const config = JSON.parse(readFileSync(join(dir, 'tsconfig.json'), 'utf8'));
  writeFileSync(join(dir, 'tsconfig.base.json'), JSON.stringify({ compilerOptions: { declaration: false } }));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: './tsconfig.base.json', ...config }));
  t.match(build(dir), { line: /building/, status: 0 });
  t.match(build(dir), { line: /^build: dist\/ is up to date/ });
  writeFileSync(join(dir, 'tsconfig.base.json'), JSON.stringify({ compilerOptions: { declaration: true } }));
  t.match(build(dir), { line: /^build: tsconfig\.base\.json changed since the last build; building/, status: 0 });
  t.ok(existsSync(join(dir, 'dist', 'src', 'b.d.ts')), 'the base\'s new setting took effect');
  t.match(build(dir), { line: /^build: dist\/ is up to date/ });
  writeFileSync(join(dir, 'tsconfig.json'), '{ "compilerOptions": ');
  t.match(build(dir), { line: /^build: tsconfig\.json does not parse; building/ });
});

// The packed package: `npm pack`, installed from the tarball into an empty project (offline where
// the npm cache has the dependencies), runs every TypeScript example of README.md — imported from
// "uvirtio", not from this checkout — and exposes exactly the subpaths package.json names.
// Nothing here is skipped: a missing tool or a failed install fails the test.

import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';

const root = process.cwd();
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The ```ts blocks of README.md (whole programs; "```ts excerpt" marks a piece of a file, not run), each with the heading it sits under. */
function readmeExamples(): { heading: string; code: string }[] {
  const out: { heading: string; code: string }[] = [];
  let heading = '';
  const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.startsWith('#')) heading = lines[i]!.replace(/^#+\s*/, '');
    if (lines[i] !== '```ts') continue;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!);
    out.push({ heading, code: body.join('\n') });
  }
  return out;
}

const work = mkdtempSync(join(tmpdir(), 'uvirtio-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

// The build ran before the tests (npm test builds first); --ignore-scripts keeps `prepare` from building again.
const packed = JSON.parse(execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' })) as { filename: string; files: { path: string }[] }[];
const tarball = join(work, packed[0]!.filename);
const app = join(work, 'app');

t.test('the tarball holds the built package and its docs, not the sources or tests', async (t) => {
  const paths = packed[0]!.files.map((f) => f.path);
  for (const p of ['dist/index.js', 'dist/index.d.ts', 'dist/lib/sim/index.js', 'docs/snapshot.schema.json', 'docs/snapshot.md', 'bin/uvirtio.js', 'README.md', 'package.json']) {
    t.ok(paths.includes(p), `${p} is packed`);
  }
  t.notOk(paths.some((p) => p.startsWith('dist/test/') || p.startsWith('test/') || p.endsWith('.ts') && !p.endsWith('.d.ts')), 'no tests and no TypeScript sources');
});

t.test('installed from the tarball, every README example runs against "uvirtio"', async (t) => {
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'readme-examples', private: true, type: 'module' }));
  const install = spawnSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--omit=dev', tarball], { cwd: app, encoding: 'utf8', timeout: 300_000 });
  t.equal(install.status, 0, `npm install of the tarball: ${install.stderr.slice(-2000)}`);
  if (install.status !== 0) return;

  const examples = readmeExamples();
  t.ok(examples.length >= 3, `README has ${examples.length} TypeScript examples`);
  examples.forEach(({ heading, code }, k) => {
    t.match(code, /from 'uvirtio(\/[a-z.]+)?';/, `"${heading}": imports from the package`);
    // Types stripped (the examples are TypeScript), nothing else changed; the last line proves it ran to the end.
    const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const file = join(app, `example-${k}.mjs`);
    writeFileSync(file, `${js}\nconsole.log('EXAMPLE-DONE');\nprocess.exit(0);\n`);
    const run = spawnSync(process.execPath, [file], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    t.equal(run.status, 0, `"${heading}": exits 0 (${run.stderr.slice(-1500)})`);
    t.match(run.stdout, /EXAMPLE-DONE/, `"${heading}": runs to its last line`);
  });
});

t.test('the subpaths package.json names resolve, and nothing else does', async (t) => {
  const probe = join(app, 'probe.mjs');
  writeFileSync(probe, `
    const out = {};
    for (const spec of ['uvirtio', 'uvirtio/sim', 'uvirtio/package.json', 'uvirtio/snapshot.schema.json', 'uvirtio/dist/lib/virtio/device.js', 'uvirtio/lib/sim/index.js']) {
      try {
        const m = spec.endsWith('.json') ? await import(spec, { with: { type: 'json' } }) : await import(spec);
        out[spec] = Object.keys(m).length;
      } catch (e) { out[spec] = e.code ?? e.message; }
    }
    console.log(JSON.stringify(out));
  `);
  const run = spawnSync(process.execPath, [probe], { cwd: app, encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, run.stderr.slice(-1500));
  const got = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number | string>;
  t.ok(typeof got['uvirtio'] === 'number' && got['uvirtio'] > 50, `"uvirtio" exports values (${got['uvirtio']})`);
  t.ok(typeof got['uvirtio/sim'] === 'number' && got['uvirtio/sim'] > 5, `"uvirtio/sim" exports values (${got['uvirtio/sim']})`);
  t.equal(typeof got['uvirtio/package.json'], 'number', 'package.json resolves');
  t.equal(typeof got['uvirtio/snapshot.schema.json'], 'number', 'the schema resolves');
  t.equal(got['uvirtio/dist/lib/virtio/device.js'], 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'internal files are not importable');
  t.equal(got['uvirtio/lib/sim/index.js'], 'ERR_PACKAGE_PATH_NOT_EXPORTED', 'nor source paths');
  const names = readdirSync(join(app, 'node_modules', 'uvirtio'));
  t.ok(names.includes('dist') && names.includes('docs'), 'installed with dist/ and docs/');
});

// `uvirtio --version` / `-V` print the package's version (a bug report's first line) and exit 0; it
// used to be refused as an unknown option (exit 2).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { uvSync } from '../support/cli.js';

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

for (const flag of ['--version', '-V']) {
  t.test(`uvirtio ${flag}`, async (t) => {
    const r = uvSync({}, process.cwd(), [flag]);
    t.equal(r.status, 0, 'exits 0');
    t.equal(r.stdout, `${version}\n`, `prints the package.json version (${version}) and nothing else`);
    t.equal(r.stderr, '', 'nothing on stderr');
  });
}

t.test('--help lists --version', async (t) => {
  const r = uvSync({}, process.cwd(), ['--help']);
  t.equal(r.status, 0);
  t.match(r.stdout, /-V, --version\s+print the uvirtio version and exit/);
});

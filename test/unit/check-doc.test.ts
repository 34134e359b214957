// docs/check.md is what the check table gives (`npm run docs:check` regenerates it), and the
// table itself is sound: unique ids, a section and a clause for each, MUST or SHOULD.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { CHECKS } from '../../cli/check/all.js';
import { renderCheckDoc } from '../../cli/check/doc.js';

t.test('docs/check.md is current', async (t) => {
  const file = readFileSync('docs/check.md', 'utf8');
  t.ok(file === renderCheckDoc(CHECKS), 'docs/check.md differs from the check table: run `npm run docs:check`');
});

t.test('the table: unique stable ids group.what, each with a section, a clause, a level and what it does', async (t) => {
  const ids = CHECKS.map((c) => c.id);
  t.equal(new Set(ids).size, ids.length, 'ids are unique');
  for (const c of CHECKS) {
    t.match(c.id, /^[a-z]+(\.[a-z]+)?\.[a-z0-9-]+$/, c.id);
    t.ok(c.section.length > 0 && c.clause.length > 10 && c.does.length > 10, `${c.id}: section, clause, does`);
    t.ok(c.level === 'MUST' || c.level === 'SHOULD', `${c.id}: level`);
  }
});

// Every UvirtioError a user can meet carries a hint (lib/errors.ts: "a hint a person can act on").
// This reads the sources (drivers/, lib/, cli/) with the TypeScript parser and lists each
// `new <UvirtioError class>(code, message)` built without a hint whose code has no generic one
// (GENERIC_HINTS in lib/errors.ts). It sees only direct constructions: an error built by a helper
// that takes its hint as a parameter is checked where the helper constructs it (the parameter
// counts as a hint). Runs in well under a second.

import t from 'tap';
import ts from 'typescript';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UvirtioError, type ErrorCode } from '../../lib/errors.js';

/** The UvirtioError classes of lib/errors.ts, and the argument index of each one's hint. */
const HINT_AT: Record<string, number> = {
  UvirtioError: 2, DeviceError: 2, UsageError: 2, DmaError: 2, RequestError: 2, SnapshotError: 2, TimeoutError: 2, VirtqueueError: 3,
};

/** Whether a code has a generic hint (an error of it built without one still gets that one). */
const hasGenericHint = (code: string): boolean => new UvirtioError(code as ErrorCode, '').hint !== undefined;

function* sources(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* sources(p);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) yield p;
  }
}

t.test('every UvirtioError built in drivers/, lib/ and cli/ has a hint, or a code with a generic one', async (t) => {
  const missing: string[] = [];
  let seen = 0;
  for (const root of ['drivers', 'lib', 'cli']) {
    for (const file of sources(root)) {
      const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (n: ts.Node): void => {
        if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text in HINT_AT) {
          seen++;
          const args = n.arguments ?? [];
          const code = args[0] && ts.isStringLiteralLike(args[0]) ? args[0].text : undefined;
          const hint = args[HINT_AT[n.expression.text]!];
          const none = !hint || (ts.isIdentifier(hint) && hint.text === 'undefined');
          // A code that is not a literal is passed through (a helper's parameter): checked where it is called.
          if (none && code !== undefined && !hasGenericHint(code)) {
            const { line } = src.getLineAndCharacterOfPosition(n.getStart());
            missing.push(`${file}:${line + 1} ${code}`);
          }
        }
        ts.forEachChild(n, visit);
      };
      visit(src);
    }
  }
  t.ok(seen > 200, `the scan found the error constructions (${seen})`);
  t.same(missing, [], 'give each of these a hint a person can act on (the third argument; VirtqueueError: the fourth)');
});

// What a user of `uvirtio check --json --junit FILE` relies on, asserted on a run against a device
// nobody here wrote (QEMU's devices over VFIO, qemu-storage-daemon, vdpa_sim): the run ends within
// its bound; exit 1 iff a MUST failed; every check of cli/check/all.ts reported, in order, as
// pass/fail/warn/n/a with a detail; the document consistent with itself (summary, ok); exactly the
// known non-conformances fail, with their clause, and every other MUST passes or is n/a; the JUnit
// file parses as XML and says the same. Used by test/vm/check*.test.ts and test/vhost-user/check.test.ts.

import type { Test } from 'tap';
import { CHECKS } from '../../cli/check/all.js';
import type { CheckReport } from '../../cli/check/runner.js';
import { findAll, parseXml } from './xml.js';

/** One `uvirtio check ADDRESS --json --junit FILE` run as the caller saw it. */
export interface CheckRun {
  address: string;
  /** Exit status (a shell's: 128 + n when killed by signal n). */
  status: number | null;
  stdout: string;
  /** The JUnit file's text, or null when it was not written. */
  junit: string | null;
  /** Wall time of the run, ms. */
  ms: number;
}

/** A known non-conformance: the check id and the spec section its result must name. */
export interface KnownFailure {
  id: string;
  section: string;
}

/**
 * Asserts everything above on `run`; `known` are the MUST failures expected (no more, no fewer).
 * Returns the parsed report (null when it did not parse) for the caller's own assertions.
 */
export function assertCheckRun(t: Test, run: CheckRun, known: KnownFailure[], boundMs: number): CheckReport | null {
  const at = run.address;
  t.ok(run.ms <= boundMs, `${at}: the run ended in ${(run.ms / 1000).toFixed(1)} s (bound ${boundMs / 1000} s)`);
  let doc: CheckReport | null = null;
  try {
    doc = JSON.parse(run.stdout) as CheckReport;
  } catch {
    t.fail(`${at}: --json printed one JSON document (exit ${String(run.status)}): ${run.stdout.slice(0, 500)}`);
    return null;
  }
  t.match(doc, { address: at, type: String, deviceType: Number, offered: /^0x[0-9a-f]+$/, ok: Boolean, ms: Number, summary: Object },
    `${at}: the document's fields`);
  t.same(doc.results.map((c) => c.id), CHECKS.map((c) => c.id), `${at}: every check, in order`);
  const bad = doc.results.filter((c) => !['pass', 'fail', 'warn', 'n/a'].includes(c.result) || typeof c.detail !== 'string' ||
    (c.result !== 'pass' && c.detail.length === 0) || typeof c.ms !== 'number' || !(c.level === 'MUST' || c.level === 'SHOULD'));
  t.same(bad, [], `${at}: each result is pass/fail/warn/n/a with a detail (every non-pass says why)`);
  t.same(doc.results.filter((c) => c.level === 'SHOULD' && c.result === 'fail'), [], `${at}: a SHOULD never fails (it warns)`);
  const count = (r: string): number => doc!.results.filter((c) => c.result === r).length;
  t.same(doc.summary, { pass: count('pass'), fail: count('fail'), warn: count('warn'), 'n/a': count('n/a') }, `${at}: the summary counts the results`);
  const failed = doc.results.filter((c) => c.result === 'fail');
  t.equal(doc.ok, failed.length === 0, `${at}: ok iff nothing failed`);
  t.equal(run.status, failed.length > 0 ? 1 : 0, `${at}: exit ${String(run.status)} — 1 iff a MUST failed`);
  t.same(failed.map((c) => ({ id: c.id, section: c.section, level: c.level })).sort((a, b) => a.id.localeCompare(b.id)),
    known.map((k) => ({ ...k, level: 'MUST' })).sort((a, b) => a.id.localeCompare(b.id)),
    `${at}: MUST failures are exactly ${known.map((k) => `${k.id} (§${k.section})`).join(', ') || 'none'}; every other MUST passes or is n/a` +
    failed.map((c) => `\n  ${c.id}: ${c.detail}`).join(''));
  if (run.junit === null) {
    t.fail(`${at}: --junit wrote no file`);
  } else {
    try {
      const xml = parseXml(run.junit);
      t.equal(xml.name, 'testsuites', `${at}: JUnit root <testsuites>`);
      t.equal(findAll(xml, 'testcase').length, doc.results.length, `${at}: JUnit: a testcase per check`);
      t.equal(findAll(xml, 'failure').length, failed.length, `${at}: JUnit: a <failure> per failed MUST`);
      t.equal(findAll(xml, 'skipped').length, count('n/a'), `${at}: JUnit: a <skipped> per n/a`);
    } catch (e) {
      t.fail(`${at}: the JUnit file is well-formed XML: ${String(e)}`);
    }
  }
  for (const c of doc.results.filter((r) => r.result === 'warn' || r.result === 'fail')) t.comment(`${at}: ${c.result} ${c.id} (§${c.section}): ${c.detail}`);
  return doc;
}

// How `uvirtio check` reports: a table for a person (clause, id, result, detail), one JSON
// document for a script, and JUnit XML for CI (one testcase per check; a failed MUST a <failure>,
// n/a a <skipped>, a warning passes with the detail in <system-out>). No XML library: the few
// elements are written here, every attribute and text escaped (escapeXml), and characters XML 1.0
// cannot carry (control characters, lone surrogates) replaced.

import type { CheckReport } from './runner.js';
import { cite } from './types.js';

/** Text safe inside an XML attribute or element: & < > " ' escaped, characters XML 1.0 forbids as U+FFFD. */
export function escapeXml(text: string): string {
  return text
    // eslint-disable-next-line no-control-regex
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** The report as JUnit XML: one testsuite named after the device, one testcase per check (classname = group). */
export function junit(r: CheckReport): string {
  const a = escapeXml;
  const cases = r.results.map((c) => {
    const group = c.id.slice(0, c.id.lastIndexOf('.'));
    const name = `${c.id} (${cite(c.section)}, ${c.level})`;
    const body = c.result === 'fail' ? `<failure message="${a(c.detail)}" type="${c.level}">${a(`${cite(c.section)}: ${c.clause}`)}</failure>`
      : c.result === 'n/a' ? `<skipped message="${a(c.detail)}"/>`
        : c.result === 'warn' ? `<system-out>${a(`WARNING (SHOULD): ${c.detail}`)}</system-out>` : '';
    return `    <testcase classname="${a(`uvirtio.check.${group}`)}" name="${a(name)}" time="${(c.ms / 1000).toFixed(4)}">${body}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="uvirtio check" tests="${r.results.length}" failures="${r.summary.fail}" skipped="${r.summary['n/a']}" time="${(r.ms / 1000).toFixed(3)}">
  <testsuite name="${a(`uvirtio check ${r.address} (virtio-${r.type})`)}" tests="${r.results.length}" failures="${r.summary.fail}" errors="0" skipped="${r.summary['n/a']}" time="${(r.ms / 1000).toFixed(3)}">
${cases.join('\n')}
  </testsuite>
</testsuites>
`;
}

/** The report as a table for a terminal: section, id, result, detail; then a summary line. */
export function table(r: CheckReport): string {
  const rows = r.results.map((c) => [cite(c.section), c.id, c.level === 'SHOULD' && c.result !== 'n/a' ? `${c.result} (SHOULD)` : c.result, c.detail]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length), 4));
  const line = (row: string[]): string => row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  ').trimEnd();
  const s = r.summary;
  return [
    `${r.address}: virtio-${r.type}, offered ${r.offered}`,
    line(['clause', 'check', 'result', 'detail']),
    ...rows.map(line),
    `${s.pass} pass, ${s.fail} fail, ${s.warn} warn, ${s['n/a']} n/a in ${r.ms} ms: ${r.ok ? 'no MUST failed' : 'a MUST failed'}`,
  ].join('\n');
}

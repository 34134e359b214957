// docs/check.md, generated from the check table (./all.ts) so that the page cannot drift from the
// code: `npm run docs:check` writes it (scripts/check-doc.mjs), test/unit/check-doc.test.ts fails
// when the file is not what renderCheckDoc() gives.

import { deviceTypeName, featureNames } from '../../lib/spec/index.js';
import { cite, type Check } from './types.js';

/** One cell of a Markdown table: pipes escaped, on one line. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** When the check is n/a, in words. */
function naWhen(c: Check): string {
  const n = c.needs;
  const parts: string[] = [];
  if (n?.types) parts.push(`the device is not ${n.types.map(deviceTypeName).join(' / ')}`);
  if (n?.pci) parts.push('the transport is not virtio-pci');
  for (const f of n?.features ?? []) parts.push(`${featureNames(1n << BigInt(f), n?.types?.length === 1 ? n.types[0] : undefined)} is not offered`);
  return parts.join('; ') || '—';
}

const GROUPS: Readonly<Record<string, string>> = {
  status: 'Device status and reset (virtio 1.2 §2.1, §2.2.2, §2.4)',
  features: 'Feature bits (virtio 1.2 §2.2, §6)',
  pci: 'The virtio-pci transport (virtio 1.2 §4.1)',
  vq: 'Virtqueues (virtio 1.2 §2.7 split, §2.8 packed), once per layout the device offers',
  blk: 'virtio-blk (virtio 1.2 §5.2)',
  net: 'virtio-net (virtio 1.2 §5.1)',
  rng: 'virtio-rng (virtio 1.2 §5.4)',
  state: 'STOP and virtqueue state (the proposal; docs/provisional-registers.md) and SUSPEND (virtio 1.4 §3.4)',
};

/** docs/check.md for `checks`. */
export function renderCheckDoc(checks: readonly Check[]): string {
  const out: string[] = [
    '# `uvirtio check`: the checks',
    '',
    '<!-- Generated from cli/check/all.ts by `npm run docs:check`; test/unit/check-doc.test.ts keeps it current. Do not edit. -->',
    '',
    '`uvirtio check DEVICE` drives a device from the driver side and reports, requirement by requirement, where it',
    'departs from the virtio 1.2 specification (and, where offered, from the STOP/state proposal and virtio 1.4',
    'SUSPEND). Each check is tied to the section that states the requirement; the clause below is our own',
    'paraphrase of it. A **MUST** that fails fails the run (exit 1); a **SHOULD** that fails is a warning (exit 0).',
    'A check is **n/a** when the device lacks what it needs (the column says when); a check never writes a blk',
    'device outside `--scratch-sector N` (and puts that block back), and a read-only device is only read (its RO check writes the block read back to `--scratch-sector N` only).',
    'Each check is bounded (`--check-timeout MS`, default 2000); the bound is named in the detail when it trips.',
    '',
    `${checks.length} checks. Usage: \`uvirtio check sim:blk\`, \`uvirtio check vfio:0000:00:04.0 --scratch-sector 2048 --junit check.xml\`,`,
    '`uvirtio check DEV --only vq.split blk`, `uvirtio check --list`.',
  ];
  let group = '';
  for (const c of checks) {
    const g = c.id.split('.')[0]!;
    if (g !== group) {
      group = g;
      out.push('', `## ${GROUPS[g] ?? g}`, '', '| id | section | level | requirement | what it does | n/a when |', '|---|---|---|---|---|---|');
    }
    out.push(`| \`${c.id}\` | ${cell(cite(c.section))} | ${c.level} | ${cell(c.clause)} | ${cell(c.does)} | ${cell(naWhen(c))} |`);
  }
  out.push('');
  return out.join('\n');
}

// `uvirtio check` from the command line: exit statuses (0 no MUST failed — SHOULD failures are
// warnings —, 1 a MUST failed, 2 bad usage), the --json document, the JUnit file (parsed as XML:
// one testcase per check, failures and skipped as the results say), --list and --only.

import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CHECKS } from '../../cli/check/all.js';
import { escapeXml } from '../../cli/check/report.js';
import { Background, sleep, uvSync } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { findAll, parseXml } from '../support/xml.js';

const dir = tempDir('uvirtio-check-');
const run = (...args: string[]): ReturnType<typeof uvSync> => uvSync({}, dir, ['check', ...args]);

interface Result { id: string; section: string; clause: string; level: string; result: string; detail: string; ms: number }

t.test('a conforming device: exit 0, one JSON document with every check', async (t) => {
  const r = run('sim:blk', '--json', '--scratch-sector', '8');
  t.equal(r.status, 0, r.stderr);
  const doc = r.json() as { address: string; type: string; ok: boolean; results: Result[]; summary: Record<string, number>; ms: number };
  t.equal(doc.address, 'sim:blk');
  t.equal(doc.type, 'blk');
  t.equal(doc.ok, true);
  t.same(doc.results.map((c) => c.id), CHECKS.map((c) => c.id), 'every check, in order');
  for (const c of doc.results) {
    t.match(c, { id: String, section: String, clause: String, level: /^(MUST|SHOULD)$/, result: /^(pass|n\/a)$/, detail: String, ms: Number }, c.id);
  }
  t.equal(doc.summary.pass + doc.summary['n/a'], CHECKS.length);
  t.equal(doc.summary.fail, 0);
});

t.test('a MUST broken: exit 1, the check failed with the code in the detail; the table says so', async (t) => {
  const r = run('sim:blk?fault=state-lie', '--json');
  t.equal(r.status, 1, r.stderr);
  const doc = r.json() as { ok: boolean; results: Result[] };
  t.equal(doc.ok, false);
  const failed = doc.results.filter((c) => c.result === 'fail');
  // From the start, the lie also spoils the snapshot that state.restore takes.
  t.same(failed.map((c) => c.id), ['state.vq-state', 'state.restore']);
  t.match(failed[0]!.detail, /^E_DEVICE_BAD_STATE: /);
  const table = run('sim:blk?fault=state-lie');
  t.equal(table.status, 1);
  t.match(table.stdout, /^proposal +state\.vq-state +fail +E_DEVICE_BAD_STATE/m, 'a row: clause, id, result, detail');
  t.match(table.stdout, /a MUST failed$/m);
});

t.test('only a SHOULD broken: a warning, exit 0', async (t) => {
  const r = run('sim:blk?fault=reserved-feature', '--json');
  t.equal(r.status, 0, r.stderr);
  const doc = r.json() as { ok: boolean; results: Result[]; summary: Record<string, number> };
  t.same(doc.results.filter((c) => c.result === 'warn').map((c) => c.id), ['features.no-reserved']);
  t.equal(doc.summary.fail, 0);
});

t.test('--junit FILE is XML: a testcase per check, failures and skipped as reported', async (t) => {
  const file = join(dir, 'check.xml');
  const r = run('sim:blk?fault=state-lie&layout=split', '--junit', file, '--json');
  t.equal(r.status, 1);
  const doc = r.json() as { results: Result[] };
  const xml = parseXml(readFileSync(file, 'utf8'));
  t.equal(xml.name, 'testsuites');
  const cases = findAll(xml, 'testcase');
  t.equal(cases.length, CHECKS.length, 'one testcase per check');
  t.equal(findAll(xml, 'failure').length, doc.results.filter((c) => c.result === 'fail').length);
  t.equal(findAll(xml, 'skipped').length, doc.results.filter((c) => c.result === 'n/a').length);
  const failed = cases.find((c) => c.children.some((e) => e.name === 'failure'))!;
  t.match(failed.attrs.name, /^state\.vq-state /);
  t.match(failed.children[0]!.attrs.message, /E_DEVICE_BAD_STATE/);
  t.equal(findAll(xml, 'testsuite')[0]!.attrs.failures, '2');
});

t.test('escaping: markup, quotes and control characters survive as text', async (t) => {
  const nasty = 'a<b>&"c\'\x01\x1b\ud800z';
  const xml = parseXml(`<x a="${escapeXml(nasty)}">${escapeXml(nasty)}</x>`);
  t.equal(xml.attrs.a, 'a<b>&"c\'\ufffd\ufffd\ufffdz');
  t.equal(xml.text, xml.attrs.a);
});

t.test('bad usage: exit 2, nothing run', async (t) => {
  for (const args of [['sim:nope'], ['sim:blk', '--only', 'nope'], [], ['sim:blk', '--scratch-sector', '-1'], ['sim:blk', '--check-timeout', '0']]) {
    const r = run(...args, '--json');
    t.equal(r.status, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    t.equal((r.json() as { ok: boolean }).ok, false);
  }
});

t.test('--list and --only', async (t) => {
  const list = run('--list', '--json');
  t.equal(list.status, 0);
  t.same((list.json() as unknown as { id: string }[]).map((c) => c.id), CHECKS.map((c) => c.id));
  const only = run('sim:rng', '--only', 'status', 'rng', '--json');
  t.equal(only.status, 0);
  const ids = (only.json() as { results: Result[] }).results.map((c) => c.id);
  t.same(ids, CHECKS.filter((c) => c.id.startsWith('status.') || c.id.startsWith('rng.')).map((c) => c.id));
});

t.test('SIGINT ends a run within 2 s (exit 130), whatever the device is doing', async (t) => {
  // A device that completes nothing: each check waits out its bound, so the suite would take seconds.
  const bg = new Background({}, dir, ['check', 'sim:blk?fault=completion-silence', '--json']);
  await sleep(1200);
  const r = await bg.signal('SIGINT');
  t.ok(r.sent, 'still running when signalled');
  t.equal(r.status, 130, r.stdout + r.stderr);
  t.ok(r.ms < 2000, `ended ${Math.round(r.ms)} ms after SIGINT`);
  t.match(r.stdout, /"code":"E_INTERRUPTED"/);
});

t.test('--junit into a path that cannot take it: exit 2 before anything runs; a failed write leaves the file as it was', async (t) => {
  for (const [path, why] of [[join(dir, 'no-such-folder', 'r.xml'), /cannot be written/], [dir, /is a directory/]] as const) {
    const r = run('sim:blk', '--only', 'status', '--junit', path);
    t.equal(r.status, 2, r.stderr);
    t.match(r.stderr, /E_INVALID_ARGUMENT: --junit .*/, path);
    t.match(r.stderr, why);
    t.notMatch(r.stderr, /bug in uvirtio/);
  }
  // An existing file is replaced whole, and no temp file stays beside it — nor one a killed writer
  // left (breaker 31b: the JUnit write never removed those; the snapshot write did).
  const file = join(dir, 'again.xml');
  writeFileSync(file, 'old');
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a pid that has exited
  writeFileSync(join(dir, `.again.xml.${dead}.tmp`), '<?xml half');
  t.equal(run('sim:blk', '--only', 'status', '--junit', file).status, 0);
  t.match(readFileSync(file, 'utf8'), /^<\?xml/);
  t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
  // A folder that takes no new files (/proc): the write fails after the run, typed, nothing left.
  const proc = run('sim:blk', '--only', 'status', '--junit', '/proc/uvirtio-check.xml');
  t.equal(proc.status, 3, proc.stderr);
  t.match(proc.stderr, /E_IO_ERROR: writing \/proc\/uvirtio-check.xml/);
});

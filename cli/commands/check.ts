// `uvirtio check DEV`: the driver-side conformance suite (cli/check/, issue 14). Runs every check
// of cli/check/all.ts that applies to the device and reports each with its spec clause: a table,
// --json, --junit FILE. Exit 0 when no MUST fails (SHOULD failures are warnings), 1 when one
// does, 2 for bad usage, 3 when the device cannot be opened at all (exit.ts).

import type { Command } from 'commander';
import { openTransport } from '../../lib/open.js';
import { UsageError } from '../../lib/errors.js';
import { CHECKS } from '../check/all.js';
import { checkOutputTarget, writeOutputFile } from '../check/output.js';
import { junit, table } from '../check/report.js';
import { runChecks } from '../check/runner.js';
import { EXIT, action } from '../exit.js';
import { intArg, timeoutOf } from '../options.js';
import { BOUNDS, boundedAcquire } from '../wait.js';

/** `uvirtio check`'s options. */
interface CheckOptions {
  json?: boolean;
  junit?: string;
  scratchSector?: number;
  only?: string[];
  checkTimeout: number;
}

async function check(address: string, o: CheckOptions, timeoutMs: number): Promise<number> {
  const unknown = (o.only ?? []).filter((p) => !CHECKS.some((c) => c.id === p || c.id.startsWith(`${p}.`)));
  if (unknown.length) throw new UsageError('E_INVALID_ARGUMENT', `--only ${unknown.join(', ')} names no check`, '`uvirtio check --list` lists the checks');
  if (o.junit) checkOutputTarget(o.junit, '--junit'); // before anything runs: a bad path wastes no run
  // The open's own waits end within --timeout with the device's error; this bound is the backstop.
  const dev = await boundedAcquire(openTransport(address, { timeoutMs }), { what: `opening ${address}`, ms: timeoutMs + BOUNDS.MARGIN_MS }, (late) => late.transport.close());
  try {
    const report = await runChecks(dev, CHECKS, { timeoutMs: o.checkTimeout, scratchSector: o.scratchSector ?? null, ...(o.only ? { only: o.only } : {}) });
    if (o.junit) writeOutputFile(o.junit, junit(report));
    console.log(o.json ? JSON.stringify(report) : table(report));
    return report.ok ? EXIT.OK : EXIT.VERDICT;
  } finally {
    await dev.transport.reset(1000).catch(() => undefined);
    dev.transport.close();
  }
}

function list(json: boolean): void {
  const rows = CHECKS.map((c) => ({ id: c.id, section: c.section, level: c.level, clause: c.clause }));
  if (json) console.log(JSON.stringify(rows));
  else for (const r of rows) console.log(`${r.id.padEnd(34)} §${r.section.padEnd(18)} ${r.level.padEnd(6)} ${r.clause}`);
}

/** Adds `uvirtio check` to the program (options: --json, --junit, --scratch-sector, --only, --check-timeout, --list). */
export function registerCheck(program: Command): void {
  program.command('check')
    .description('run the driver-side conformance suite against a device: each virtio 1.2 requirement a driver can observe, by clause')
    .argument('[device]', 'device address (sim:blk, vfio:BDF, vhost-user:SOCKET, …)')
    .option('--json', 'one JSON document on stdout')
    .option('--junit <file>', 'also write JUnit XML (one testcase per check) to FILE')
    .option('--scratch-sector <n>', 'the one blk sector (a whole logical block) checks may write; without it nothing is written',
      intArg('scratch-sector', 0, Number.MAX_SAFE_INTEGER))
    .option('--only <ids...>', 'only these checks or groups (e.g. status vq.split blk.read)')
    .option('--check-timeout <ms>', 'bound on each check', intArg('check-timeout', 10, 600_000), 2000)
    .option('--list', 'list the checks and exit')
    .action(action(async (device: string | undefined, o: CheckOptions & { list?: boolean }, cmd: Command) => {
      if (o.list) return list(Boolean(o.json));
      if (!device) throw new UsageError('E_INVALID_ARGUMENT', 'missing device address', '`uvirtio check sim:blk`, or --list');
      return check(device, o, timeoutOf(cmd));
    }));
}

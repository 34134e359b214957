// Runs `uvirtio check`'s suite (cli/check) in-process against a reference device, with a fault
// injected at a chosen check and cleared after another: the harness of test/sim/check-*.test.ts.

import { openTransport } from '../../lib/open.js';
import type { AnySimDevice, SimFault } from '../../lib/sim/index.js';
import { CHECKS } from '../../cli/check/all.js';
import { runChecks, type CheckReport } from '../../cli/check/runner.js';

/** Where a fault goes in: before check `at` starts, or (live) once it has brought its device up; cleared after `until` (default `at`). */
export interface Injection {
  fault: SimFault;
  at: string;
  live?: boolean;
  until?: string;
}

/** The suite against `address` (a sim: address) with `injection`, if any; the device closed afterwards. */
export async function checkSim(address: string, injection?: Injection, scratchSector: number | null = 8): Promise<CheckReport> {
  const dev = await openTransport(address);
  const sim = (dev as { sim?: AnySimDevice }).sim!;
  const inject = (id: string, live: boolean): void => {
    if (injection && id === injection.at && Boolean(injection.live) === live) sim.injectFault(injection.fault);
  };
  try {
    return await runChecks(dev, CHECKS, {
      timeoutMs: 2000, scratchSector,
      hooks: {
        before: (id) => inject(id, false),
        live: (id) => inject(id, true),
        after: (id) => {
          if (injection && id === (injection.until ?? injection.at)) sim.clearFaults();
        },
      },
    });
  } finally {
    dev.transport.close();
  }
}

/** The checks that did not pass nor were n/a, as id → result. */
export function notPassed(r: CheckReport): Record<string, string> {
  return Object.fromEntries(r.results.filter((c) => c.result !== 'pass' && c.result !== 'n/a').map((c) => [c.id, `${c.result}: ${c.detail}`]));
}

// `uvirtio check`'s runner when a check outlives its bound: the run it abandons goes on in the
// background, and must not reach the device under the next check (a reset there would fail a good
// device's check), nor hand the group's next check a result it cut short.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { Status } from '../../lib/spec/index.js';
import { CHECKS } from '../../cli/check/all.js';
import { runChecks } from '../../cli/check/runner.js';
import { fail, pass, type Check } from '../../cli/check/types.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('a check that outlived its bound cannot reset the device under the next check', async (t) => {
  let late: string | null = null;
  const checks: Check[] = [
    {
      id: 'x.slow', section: '2.4', clause: 'test', level: 'MUST', does: 'test', timeoutMs: 30,
      async run(ctx) {
        await ctx.open();
        await sleep(80); // past its bound: the next check is running by now
        try {
          ctx.t.writeStatus(0);
          late = 'the late reset went through';
        } catch (e) {
          late = (e as { code?: string }).code ?? String(e);
        }
        try {
          await ctx.open();
        } catch (e) {
          late += ` / ${(e as { code?: string }).code ?? String(e)}`;
        }
        return pass();
      },
    },
    {
      id: 'y.victim', section: '2.4', clause: 'test', level: 'MUST', does: 'test',
      async run(ctx) {
        const d = await ctx.open();
        await d.driverOk();
        await sleep(150);
        const s = ctx.t.readStatus();
        return s & Status.DRIVER_OK ? pass() : fail(`status 0x${s.toString(16)}: reset under the check`);
      },
    },
  ];
  const dev = await openTransport('sim:blk');
  try {
    const r = await runChecks(dev, checks, { timeoutMs: 2000, scratchSector: null });
    t.match(r.results[0], { id: 'x.slow', result: 'fail', detail: /E_REQUEST_TIMEOUT: check x.slow did not end within 30 ms/ });
    t.match(r.results[1], { id: 'y.victim', result: 'pass' }, r.results[1]!.detail);
    await sleep(50);
    t.equal(late, 'E_CLOSED / E_CLOSED', 'the abandoned run is refused the transport and new devices');
  } finally {
    dev.transport.close();
  }
});

t.test('a traffic run cut short by the bound is not the group\'s other checks\' result', async (t) => {
  const dev = await openTransport('sim:blk?latency=5');
  try {
    const vq = CHECKS.filter((c) => c.id.startsWith('vq.split.'));
    const r = await runChecks(dev, vq, { timeoutMs: 20, scratchSector: null });
    t.ok(r.results.length > 1);
    for (const c of r.results) {
      t.notMatch(c.detail, /E_CLOSED/, `${c.id}: its own bound, not another check's closed queue (${c.detail})`);
    }
  } finally {
    dev.transport.close();
  }
});

t.test('a device whose reset never completes fails the run (§2.4.1), not just n/a for the rest', async (t) => {
  for (const [at, only] of [['vq.split.chains', undefined], ['blk.read', ['blk']]] as const) {
    const dev = await openTransport('sim:blk');
    const sim = (dev as { sim?: { injectFault(f: { kind: string }): void; clearFaults(): void } }).sim!;
    try {
      const r = await runChecks(dev, CHECKS, {
        timeoutMs: 2000, scratchSector: null, ...(only ? { only } : {}),
        hooks: { live: (id) => void (id === at && sim.injectFault({ kind: 'reset-stuck' })) },
      });
      t.equal(r.ok, false, `${at}: a MUST failed`);
      t.match(r.results.find((c) => c.id === 'status.reset-reads-zero'), { result: 'fail', detail: new RegExp(`after ${at} the device did not complete a reset`) });
      t.ok(r.results.filter((c) => c.detail.startsWith('not run:')).length > 0, 'the rest not run');
    } finally {
      sim.clearFaults();
      dev.transport.close();
    }
  }
});

// VM tier, vdpa profile: `uvirtio check --json --junit FILE` on the kernel's vdpa_sim_blk and
// vdpa_sim_net over vhost-vdpa (test/vm/guest/check-vdpa.ts), asserted as on QEMU's devices
// (test/support/check-real.ts): bounded, exit 1 iff a MUST failed, every check with a detail,
// JSON and JUnit consistent, exactly the known non-conformances failing with their clause; and the
// blk RAM disk's first sectors hash the same before and after (only the scratch sector written,
// and written back).
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable } from './vm-run.js';
import { assertCheckRun, type KnownFailure } from '../support/check-real.js';
import { prerequisite } from '../support/prerequisite.js';

/**
 * The MUST failures vdpa_sim (Linux 6.12, through vhost-vdpa) shows, by device (README "Checking a
 * device"): VHOST_SET_FEATURES takes a bit the device did not offer and FEATURES_OK reads back set
 * (virtio 1.2 §2.2.2), as on QEMU.
 */
const FEATURES_OK_STICKS: KnownFailure = { id: 'status.features-ok-unoffered', section: '2.2.2' };
const KNOWN: Record<string, KnownFailure[]> = { blk0: [FEATURES_OK_STICKS], net0: [FEATURES_OK_STICKS] };
const BOUND_MS = 120_000;

const why = vmUnavailable();
t.test('uvirtio check on vdpa_sim_blk and vdpa_sim_net over vhost-vdpa', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/check-vdpa.js', { timeoutSec: 900 });
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true }));
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  for (const [name, type] of [['blk0', 'blk'], ['net0', 'net']] as const) {
    const r = resultsOf(run, 'check').find((c) => c.name === name);
    t.comment(`${type} ${name}: exit ${String(r?.status)} in ${String(r?.ms)} ms`);
    if (!r) {
      t.fail(`${name} was checked`);
      continue;
    }
    const doc = assertCheckRun(t, { address: String(r.address), status: r.status as number | null, stdout: String(r.stdout), junit: r.junit as string | null, ms: Number(r.ms) },
      KNOWN[name]!, BOUND_MS);
    t.equal(doc?.type, type, `${name} is a virtio-${type}`);
    t.equal(doc ? (BigInt(doc.offered) & (1n << 34n)) !== 0n : null, false, `${name}: split ring only (RING_PACKED not offered: ${String(doc?.offered)})`);
    if (type === 'blk') t.equal(doc?.results.find((c) => c.id === 'blk.read-after-write')?.result, 'pass', 'the scratch sector was written and read back');
  }
  const before = resultsOf(run, 'hash-before')[0];
  const after = resultsOf(run, 'hash-after')[0];
  t.match(before, { ok: true, sha256: /^[0-9a-f]{64}$/ }, 'the RAM disk filled and hashed before the check');
  t.equal(after?.sha256, before?.sha256, `sectors 0–${String(before?.sectors)} hash the same after the check`);
});

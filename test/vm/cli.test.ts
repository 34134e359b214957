// VM tier: the `uvirtio` command on vfio: addresses (test/vm/guest/cli.ts), viommu profile, with a
// third blk function on blk0.img (a migration target of the same kind as 0000:01:00.0) and a
// virtio function in a group that is not viable (test/vm/vm-run.ts thirdBlkArgs, notViableArgs).
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { NOT_VIABLE_BDF, RNG_BDF, notViableArgs, resultsOf, rngArgs, runInVm, thirdBlkArgs, vmUnavailable, type GuestResult } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const exactlyOnce = { lost: 0, duplicated: 0, corrupted: 0 };

/** Every request the rehearsal submitted completed (how many it submits is the engine's business). */
function allCompleted(t: Test, r: GuestResult | undefined): void {
  const q = (r?.json as { requests?: { submitted: number; completed: number } } | undefined)?.requests;
  t.ok(q && q.submitted > 0 && q.completed === q.submitted, `${String(q?.completed)} of ${String(q?.submitted)} requests completed`);
}

/** An error exit (2 usage/input or 3 device/platform, as cli/main.ts maps the code), never 0 or the verdict's 1. */
function failedAsError(t: Test, r: GuestResult | undefined): void {
  t.ok(r?.status === 2 || r?.status === 3, `exit ${String(r?.status)} (an error exit)`);
}

const why = vmUnavailable();
t.test('uvirtio on vfio: addresses (viommu)', prerequisite(why), async (t) => {
  const run = await runInVm('viommu', 'node dist/test/vm/guest/cli.js',
    { qemuArgs: (dir, profile) => [...thirdBlkArgs(dir, profile), ...notViableArgs(dir, profile), ...rngArgs(dir, profile)] });
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true })); // after the subtests
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  const cli = (name: string): GuestResult | undefined => resultsOf(run, 'cli').find((r) => r.name === name);
  const commented = (name: string): GuestResult | undefined => {
    const r = cli(name);
    t.comment(`uvirtio ${(r?.args as string[] | undefined)?.join(' ')}: exit ${String(r?.status)} in ${String(r?.ms)} ms`);
    return r;
  };

  t.test('a driver written outside the SDK (examples/rng-driver.ts) reads entropy from QEMU\'s virtio-rng', async (t) => {
    const r = resultsOf(run, 'example').find((x) => x.name === 'rng-driver');
    t.match(r, { status: 0, json: { ok: true, device: `vfio:${RNG_BDF}`, bytes: 4096 } }, String(r?.stderr ?? ''));
    const distinct = (r?.json as { distinct?: number } | null)?.distinct ?? 0;
    t.ok(distinct > 200, `4096 bytes of entropy take ${distinct} distinct byte values`);
  });

  t.test('info lists quiesce as the only mechanism', async (t) => {
    t.match(commented('info-split-blk'), { status: 0, json: { address: 'vfio:0000:01:00.0', type: 'blk', deviceState: false, queues: [{ index: 0 }] } });
    t.same((cli('info-split-blk')?.json as Record<string, unknown> | undefined)?.mechanisms, ['quiesce'], 'split blk: quiesce only');
    t.match(commented('info-packed-net'), { status: 0, json: { address: 'vfio:0000:04:00.0', type: 'net', config: { mac: '52:54:00:12:34:02' } } },
      'a short bare BDF is a vfio: address');
    t.same((cli('info-packed-net')?.json as Record<string, unknown> | undefined)?.mechanisms, ['quiesce'], 'packed net: quiesce only');
  });

  t.test('rehearse --mechanism auto falls back to quiesce', async (t) => {
    for (const [name, device, layout] of [['rehearse-split', 'vfio:0000:01:00.0', 'split'], ['rehearse-packed', 'vfio:0000:02:00.0', 'packed']]) {
      const r = commented(name!);
      t.match(r, { status: 0, json: { ok: true, device, target: device, workload: 'blk', mechanism: 'quiesce', layout, cycles: 5,
        requests: exactlyOnce } }, `${device} (${layout}): 5 cycles, nothing lost, duplicated or corrupted`);
      allCompleted(t, r);
    }
    const to = commented('rehearse-to');
    t.match(to, { status: 0, json: { ok: true, device: 'vfio:0000:01:00.0', target: 'vfio:0000:05:00.0', mechanism: 'quiesce', cycles: 5,
      requests: exactlyOnce } }, '--to a second split blk function on the same storage');
    allCompleted(t, to);
    const hops = ((to?.json as Record<string, unknown> | undefined)?.cycle_reports as { from: string; to: string; inFlightAtStop: number }[] | undefined) ?? [];
    t.same(hops.map((c) => c.to), ['vfio:0000:05:00.0', 'vfio:0000:01:00.0', 'vfio:0000:05:00.0', 'vfio:0000:01:00.0', 'vfio:0000:05:00.0'],
      'each cycle migrates to the other function');
    t.ok(hops.every((c) => c.inFlightAtStop > 0), 'every stop came with requests in flight');
  });

  t.test('soak: 44 stop/restore cycles on QEMU with requests in flight, exactly once', async (t) => {
    for (const [name, cycles, layout] of [['soak-to', 24, 'split'], ['soak-packed', 20, 'packed']] as const) {
      const r = commented(name);
      t.match(r, { status: 0, json: { ok: true, mechanism: 'quiesce', layout, cycles, requests: exactlyOnce } },
        `${name}: ${cycles} cycles, nothing lost, duplicated or corrupted`);
      allCompleted(t, r);
      const hops = ((r?.json as Record<string, unknown> | undefined)?.cycle_reports as { inFlightAtStop: number }[] | undefined) ?? [];
      t.ok(hops.filter((c) => c.inFlightAtStop > 0).length >= cycles / 2, `${name}: most stops came with requests in flight`);
    }
  });

  t.test('Ctrl-C on VFIO: a rehearsal ends within 2 s with 130 / 143, and the function works afterwards', async (t) => {
    for (const [name, signal, status] of [['sigint-rehearse', 'SIGINT', 130], ['sigterm-rehearse', 'SIGTERM', 143]] as const) {
      const r = resultsOf(run, 'cli-signal').find((x) => x.name === name);
      t.match(r, { running: true, signal, status }, `${name}: ${signal} → ${status} (${String(r?.stderr ?? '').trim()})`);
      t.ok(Number(r?.ms) <= 2000, `${name}: ended ${String(r?.ms)} ms after ${signal}`);
    }
    const after = commented('after-signal');
    t.match(after, { status: 0, json: { ok: true, cycles: 2, requests: exactlyOnce } }, 'a new rehearsal on the interrupted function is exactly-once');
  });

  t.test('rehearse refusals', async (t) => {
    // Whichever check fires first: the second queue (BlkDriver drives every queue the device has) or RING_PACKED.
    t.match(commented('rehearse-to-refused'), { status: 2, json: { ok: false, error: { code: /^E_SNAPSHOT_(QUEUE_COUNT|FEATURES)$/, message: /queue|RING_PACKED/ } } },
      'packed (2 queues) → split (1 queue): refused before the target is touched; exit 2');
    t.match(commented('rehearse-ring-state'), { status: 3, json: { ok: false, error: { code: 'E_STATE_UNSUPPORTED' } } },
      '--mechanism ring-state on QEMU 7.2: E_STATE_UNSUPPORTED, exit 3');
  });

  t.test('bad input', async (t) => {
    t.match(resultsOf(run, 'open-malformed')[0], { threw: true, code: 'E_BAD_ADDRESS' }, 'a malformed BDF');
    t.match(resultsOf(run, 'open-no-device')[0], { threw: true, code: 'E_NO_DEVICE' }, 'a BDF with no function');
    t.match(resultsOf(run, 'open-not-virtio')[0], { threw: true, code: 'E_NOT_VIRTIO' }, 'a function that is not virtio');
    t.match(resultsOf(run, 'unbind')[0], { ok: true, driver: null }, 'the packed NIC is unbound');
    const notBound = commented('info-not-bound');
    t.match(notBound, { json: { ok: false, error: { code: 'E_NOT_BOUND', hint: /uvirtio bind 0000:04:00\.0/ } } },
      'an unbound function: E_NOT_BOUND with the bind command in the hint');
    failedAsError(t, notBound);
    t.match(resultsOf(run, 'open-rebound')[0], { ok: true }, 'bound again, it opens');
    const notViable = commented('info-not-viable');
    t.match(notViable, { json: { ok: false, error: { code: 'E_GROUP_NOT_VIABLE', message: /0000:07:01\.0 \(serial\)/ } } },
      `${NOT_VIABLE_BDF} shares its group with a pci-serial on the 8250 driver: E_GROUP_NOT_VIABLE naming it`);
    failedAsError(t, notViable);
    t.match(resultsOf(run, 'open-not-viable')[0], { threw: true, code: 'E_GROUP_NOT_VIABLE' }, 'VfioPciFunction.open refuses it too');
    t.match(resultsOf(run, 'kernel-not-viable')[0], { threw: true, code: 'E_GROUP_NOT_VIABLE', message: /also holds 0000:07:01\.0 \(serial\)$/ },
      'and so does the kernel (VFIO_GROUP_GET_STATUS without VIABLE), naming only the blocker');
  });
});

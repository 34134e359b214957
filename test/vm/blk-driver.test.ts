// VM tier: BlkDriver over vfio: addresses (test/vm/guest/blk-driver.ts) in both IOMMU profiles —
// MSI-X and polling completions, reset and open again, stop/snapshot/reinit on a device that offers
// quiesce only, a migration to a third function sharing the DMA memory, and the refusal of a
// packed snapshot by a split-only function. What the guest wrote is checked in the disk images.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { MIGRATE_FIRST, MIGRATE_WRITES, pattern, regionsOf, sectorBytes, STATE_FIRST, STATE_WRITES } from './guest/blk-layout.js';
import { resultsOf, runInVm, thirdBlkArgs, vmUnavailable } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const DISKS = [
  { address: 'vfio:0000:01:00.0', image: 'blk0.img', layout: 'split' },
  { address: 'vfio:0000:02:00.0', image: 'blk1.img', layout: 'packed' },
];

const sectorsOf = (image: Buffer, sector: number, count: number): Buffer => image.subarray(sector * 512, (sector + count) * 512);

const why = vmUnavailable();
for (const profile of ['viommu', 'noiommu'] as const) {
  t.test(`BlkDriver over vfio: (${profile})`, prerequisite(why), async (t) => {
    const run = await runInVm(profile, 'node dist/test/vm/guest/blk-driver.js', { qemuArgs: thirdBlkArgs });
    t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
    t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true })); // after the subtests
    if (run.status !== 0) t.comment(run.output + run.stderr);
    t.equal(run.status, 0, 'the guest program exits 0');
    t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
    t.match(resultsOf(run, 'done'), [{ third: '0000:05:00.0' }], 'the guest ran to the end and found the third blk function');

    for (const [n, d] of DISKS.entries()) {
      const by = (check: string): Record<string, unknown>[] => resultsOf(run, check).filter((r) => r.address === d.address);
      t.test(`${d.address} (${d.layout})`, async (t) => {
        t.match(by('mode'), [
          { ok: true, mode: 'msix', interrupts: 'msix', queueInterrupts: true, layout: d.layout, readBack: true },
          { ok: true, mode: 'poll', interrupts: 'poll', queueInterrupts: false, layout: d.layout, readBack: true },
        ], 'MSI-X and polling completions both write and read back');
        t.match(by('hybrid'), [{ ok: true, interrupts: 'msix', hybridPollUs: 1000, readBack: true, reads: 128 }],
          'MSI-X with poll-then-sleep writes, reads back, and completes QD1 and QD8 reads');
        if (profile === 'noiommu') {
          t.ok(by('mode').every((r) => Number(r.hugepages) >= 1 && Number(r.hugepages) <= 2),
            `no-IOMMU: the request slots share hugepages (${by('mode').map((r) => String(r.hugepages)).join(', ')} in use)`);
        }
        t.match(by('reset')[0], { ok: true, wroteBefore: true, intact: { msix: true, poll: true, 'before-reset': true }, wroteAfter: true },
          'close (reset) and open again: earlier writes intact, new writes work');
        for (const mode of ['msix', 'poll']) {
          t.same(by('mechanisms').find((r) => r.mode === mode)?.mechanisms, ['quiesce'], `${mode}: QEMU 7.2 offers quiesce only`);
          for (const m of ['ring-state', 'suspend']) {
            t.match(by('stop-refused').find((r) => r.mode === mode && r.mechanism === m), { threw: true, code: 'E_STATE_UNSUPPORTED' },
              `${mode}: stop({ mechanism: '${m}' }) is refused with E_STATE_UNSUPPORTED`);
          }
          const s = by('state').find((r) => r.mode === mode);
          t.match(s, { ok: true, stateBefore: 'live', mechanism: 'quiesce', snapshotMechanism: 'quiesce', stateAfter: 'live',
            written: STATE_WRITES, intact: STATE_WRITES }, `${mode}: stop(auto) → quiesce, snapshot, reinit; every write intact`);
          // One queue on the split function; the packed one has two, which BlkDriver may drive both of (MQ).
          t.ok(d.layout === 'split' ? s?.queues === 1 : s?.queues === 1 || s?.queues === 2, `${mode}: the snapshot holds ${String(s?.queues)} queue(s)`);
          t.ok(Number(s?.inFlightAtStop) > 0, `${mode}: the stop came with ${String(s?.inFlightAtStop)} requests in flight`);
        }
        const image = fs.readFileSync(path.join(run.workDir, d.image));
        for (const r of regionsOf(n)) {
          t.ok(sectorsOf(image, r.sector, r.sectors).equals(pattern(r.tag, r.sectors * 512)), `${d.image}: region ${r.name} is on the disk`);
        }
        for (const mode of ['msix', 'poll'] as const) {
          let good = 0;
          for (let i = 0; i < STATE_WRITES; i++) {
            const s = STATE_FIRST[mode] + i;
            if (sectorsOf(image, s, 1).equals(sectorBytes(s, 100 + n))) good++;
          }
          t.equal(good, STATE_WRITES, `${d.image}: the ${mode} writes around the stop are on the disk`);
        }
      });
    }

    t.test('migration to a third function that shares the DMA memory', async (t) => {
      t.match(resultsOf(run, 'migrate')[0], {
        ok: true, third: 'vfio:0000:05:00.0', shared: true, usersBefore: 2, usersAfterClose: 1,
        path: ['0000:05:00.0', '0000:01:00.0', '0000:05:00.0'], mechanisms: ['quiesce', 'quiesce', 'quiesce'],
        written: MIGRATE_WRITES, intact: MIGRATE_WRITES,
      }, 'A → C → A → C with requests in flight, then A closed while C goes on: every write intact');
      const image = fs.readFileSync(path.join(run.workDir, 'blk0.img'));
      let good = 0;
      for (let i = 0; i < MIGRATE_WRITES; i++) if (sectorsOf(image, MIGRATE_FIRST + i, 1).equals(sectorBytes(MIGRATE_FIRST + i, 200))) good++;
      t.equal(good, MIGRATE_WRITES, 'blk0.img holds every write, whichever function carried it');
    });

    t.test('a packed snapshot on the split-only function', async (t) => {
      // Whichever check fires first: the packed device's second queue (when the driver uses it) or RING_PACKED.
      t.match(resultsOf(run, 'refuse')[0], { threw: true, code: /^E_SNAPSHOT_(QUEUE_COUNT|FEATURES)$/, message: /queue|RING_PACKED/ },
        'reinit onto 0000:01:00.0 is refused before it touches the device');
      t.match(resultsOf(run, 'refuse-after')[0], { ok: true, state: 'live', now: '0000:02:00.0', readBack: true },
        'the source resumes and goes on');
    });
  });
}

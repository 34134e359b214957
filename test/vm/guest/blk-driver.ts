// Runs inside the test VM: BlkDriver over vfio: addresses (lib/open.ts) on each virtio-blk function.
//   modes       MSI-X and polling completions, each writing and reading back its own region;
//               then MSI-X with poll-then-sleep (hybridPollUs) on the MSI-X region again
//   reset       open, write, close (a device reset), open again: everything written is still there
//   state       QEMU 7.2 offers neither RING_STATE nor SUSPEND: mechanisms() is quiesce only, the
//               others are refused; stop(auto) with requests in flight → quiesce, snapshot through
//               JSON, reinit, more writes — in MSI-X and in polling mode
//   migrate     (when the VM has a third blk function on blk0.img, test/vm/vm-run.ts THIRD_BLK) a
//               driver moves blk0's device ⇄ the third one, which shares its DMA memory (shareWith);
//               the source function is closed while the target goes on using the rings
//   refuse      a packed-ring snapshot is refused by the split-only function
// The host side (test/vm/blk-driver.test.ts) checks every region in the disk images afterwards.

import { BlkDriver, type BlkOpenOptions } from '../../../drivers/blk/index.js';
import { openTransport, type OpenedDevice } from '../../../lib/open.js';
import type { VirtioPciTransport } from '../../../lib/transport/pci/transport.js';
import { DeviceType } from '../../../lib/spec/index.js';
import { parseSnapshot } from '../../../lib/virtio/snapshot/index.js';
import { listVirtioDevices, NoIommuBackend, type VfioPciFunction } from '../../../lib/vfio/index.js';
import { MIGRATE_FIRST, MIGRATE_WRITES, pattern, regionsOf, sectorBytes, STATE_FIRST, STATE_WRITES } from './blk-layout.js';
import { expectErrorAsync, report, step } from './report.js';

const DISKS = [{ address: 'vfio:0000:01:00.0', n: 0 }, { address: 'vfio:0000:02:00.0', n: 1 }];

const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const fnOf = (d: OpenedDevice): VfioPciFunction => (d.transport as VirtioPciTransport).fn as VfioPciFunction;

async function openBlk(address: string, options: BlkOpenOptions = {}): Promise<BlkDriver> {
  const dev = await openTransport(address);
  return BlkDriver.open(dev.transport, { maxTransfer: 16 * 1024, ...options });
}

async function writeRegion(blk: BlkDriver, r: { sector: number; sectors: number; tag: number }): Promise<boolean> {
  const data = pattern(r.tag, r.sectors * 512);
  await blk.write(r.sector, data);
  await blk.flush();
  return same(await blk.read(r.sector, r.sectors), data);
}

/** Numbered single-sector writes; a stop/snapshot/reinit after the first half is issued, with those in flight. */
async function writesAroundStop(blk: BlkDriver, first: number, count: number, tag: number,
  midway: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  const half = Math.floor(count / 2);
  const issue = (i: number): Promise<void> => blk.write(first + i, sectorBytes(first + i, tag));
  const early = Array.from({ length: half }, (_, i) => issue(i));
  // Let the first requests reach the ring, so that the stop happens with requests in flight.
  for (let spins = 0; spins < 1000 && blk.requests.vq.inFlight < Math.min(half, 8); spins++) await new Promise(setImmediate);
  const inFlightAtStop = blk.requests.vq.inFlight;
  const info = await midway();
  const late = Array.from({ length: count - half }, (_, i) => issue(half + i));
  await Promise.all([...early, ...late]);
  await blk.flush();
  let intact = 0;
  for (let i = 0; i < count; i++) if (same(await blk.read(first + i, 1), sectorBytes(first + i, tag))) intact++;
  return { ...info, inFlightAtStop, written: count, intact };
}

async function stopSnapshotReinit(blk: BlkDriver, target?: OpenedDevice): Promise<Record<string, unknown>> {
  const mechanism = await blk.stop({ mechanism: 'auto' });
  const snap = parseSnapshot(JSON.stringify(blk.snapshot()));
  await blk.reinit(snap, target ? { target: target.transport } : {});
  return { mechanism, snapshotMechanism: snap.mechanism, queues: snap.queues.length, stateAfter: blk.device.phase, now: blk.device.address };
}

async function perDisk(address: string, n: number): Promise<void> {
  const [msix, poll, before, after] = regionsOf(n);
  for (const [mode, region] of [['msix', msix!], ['poll', poll!]] as const) {
    await step('mode', async () => {
      const blk = await openBlk(address, { interrupts: mode });
      try {
        const backend = ((blk.device.transport as VirtioPciTransport).fn as VfioPciFunction).dma.backend;
        return { address, mode, interrupts: blk.device.interruptMode, queueInterrupts: blk.device.queueHasInterrupts(0),
          layout: blk.device.layout, readBack: await writeRegion(blk, region),
          // no-IOMMU: the 16 KiB request slots share 2 MiB hugepages instead of taking one each
          hugepages: backend instanceof NoIommuBackend ? backend.arenaCount : null };
      } finally {
        await blk.close();
      }
    });
  }
  // Poll-then-sleep (OpenOptions.hybridPollUs) on the real device: its region again, then QD1 and
  // QD8 reads, with MSI-X taking over whenever the window passes.
  await step('hybrid', async () => {
    const blk = await openBlk(address, { interrupts: 'msix', hybridPollUs: 1000, depth: 8 });
    try {
      const readBack = await writeRegion(blk, msix!);
      let reads = 0;
      for (let i = 0; i < 64; i++) reads += (await blk.read(msix!.sector + (i % msix!.sectors), 1)).length === 512 ? 1 : 0;
      const batch = await Promise.all(Array.from({ length: 64 }, (_, i) => blk.read(msix!.sector + (i % msix!.sectors), 1)));
      reads += batch.filter((b) => b.length === 512).length;
      return { address, interrupts: blk.device.interruptMode, hybridPollUs: blk.device.hybridPollUs, readBack, reads };
    } finally {
      await blk.close();
    }
  });

  await step('reset', async () => {
    const first = await openBlk(address);
    const wroteBefore = await writeRegion(first, before!);
    await first.close(); // device reset, rings freed, function closed
    const again = await openBlk(address);
    try {
      const intact: Record<string, boolean> = {};
      for (const r of [msix!, poll!, before!]) intact[r.name] = same(await again.read(r.sector, r.sectors), pattern(r.tag, r.sectors * 512));
      return { address, wroteBefore, intact, wroteAfter: await writeRegion(again, after!) };
    } finally {
      await again.close();
    }
  });

  for (const mode of ['msix', 'poll'] as const) {
    const blk = await openBlk(address, { interrupts: mode, depth: 32 });
    try {
      await step('mechanisms', () => ({ address, mode, mechanisms: blk.device.mechanisms() }));
      for (const m of ['ring-state', 'suspend'] as const) {
        await expectErrorAsync('stop-refused', () => blk.stop({ mechanism: m }), { address, mode, mechanism: m });
      }
      await step('state', async () => ({ address, mode, stateBefore: blk.device.phase,
        ...await writesAroundStop(blk, STATE_FIRST[mode], STATE_WRITES, 100 + n, () => stopSnapshotReinit(blk)) }));
    } finally {
      await blk.close();
    }
  }
}

/** blk0's function ⇄ a third function on the same image, sharing DMA memory. */
async function migrate(third: string): Promise<void> {
  await step('migrate', async () => {
    const a = await openTransport(DISKS[0]!.address);
    const c = await openTransport(third, { shareWith: a });
    const shared = fnOf(a).sharesMemoryWith(fnOf(c));
    const usersBefore = fnOf(a).space.users;
    const blk = await BlkDriver.open(a.transport, { depth: 16, maxTransfer: 4096 });
    try {
      const cycles: Record<string, unknown>[] = [];
      const q = MIGRATE_WRITES / 4;
      const part = (k: number, target: OpenedDevice): Promise<Record<string, unknown>> =>
        writesAroundStop(blk, MIGRATE_FIRST + k * q, q, 200, async () => {
          const r = await stopSnapshotReinit(blk, target);
          cycles.push(r);
          return r;
        });
      const parts = [await part(0, c), await part(1, a), await part(2, c)];
      // The source function goes away; the target still reaches the rings and buffers.
      fnOf(a).close();
      const usersAfterClose = fnOf(c).space.users;
      const last = await writesAroundStop(blk, MIGRATE_FIRST + 3 * q, q, 200, async () => ({}));
      let intact = 0;
      for (let i = 0; i < MIGRATE_WRITES; i++) {
        if (same(await blk.read(MIGRATE_FIRST + i, 1), sectorBytes(MIGRATE_FIRST + i, 200))) intact++;
      }
      return { third, shared, usersBefore, usersAfterClose, path: cycles.map((x) => x.now), mechanisms: cycles.map((x) => x.mechanism),
        partsIntact: [...parts, last].map((p) => p.intact), written: MIGRATE_WRITES, intact };
    } finally {
      await blk.close();
      a.transport.close();
      c.transport.close();
    }
  });
}

/** A packed-ring driver's snapshot cannot be brought up on the split-only function. */
async function refuse(): Promise<void> {
  const b = await openTransport(DISKS[1]!.address);
  const a = await openTransport(DISKS[0]!.address, { shareWith: b });
  const blk = await BlkDriver.open(b.transport, { depth: 8, maxTransfer: 4096 });
  try {
    await blk.write(3000, sectorBytes(3000, 300));
    await blk.stop({ mechanism: 'auto' });
    const snap = parseSnapshot(JSON.stringify(blk.snapshot()));
    await expectErrorAsync('refuse', () => blk.reinit(snap, { target: a.transport }), { from: b.address, to: a.address, layout: snap.layout });
    await step('refuse-after', async () => {
      await blk.resume(); // quiesce resumes: the source device never stopped
      await blk.write(3001, sectorBytes(3001, 300));
      return { state: blk.device.phase, now: blk.device.address, readBack: same(await blk.read(3001, 1), sectorBytes(3001, 300)) };
    });
  } finally {
    await blk.close();
    a.transport.close();
    b.transport.close();
  }
}

async function main(): Promise<void> {
  for (const d of DISKS) await perDisk(d.address, d.n);
  const third = listVirtioDevices().find((d) => d.virtioType === DeviceType.BLK && d.vfioUsable && !DISKS.some((x) => x.address === `vfio:${d.bdf}`));
  if (third) await migrate(`vfio:${third.bdf}`);
  await refuse();
  report('done', { third: third?.bdf ?? null });
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

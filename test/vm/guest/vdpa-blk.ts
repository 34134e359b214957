// Runs inside the test VM's vdpa profile: BlkDriver over vhost-vdpa: addresses on vdpa_sim_blk
// (the kernel's simulator, a 128 MiB RAM disk per device; blk0 and blk1 have one each).
//   info       device type, queues, backend features negotiated, IOVA range, mechanisms
//   io         checksummed sectors written and read back, with call-eventfd interrupts and polling
//   same       numbered writes around stop (SUSPEND + GET_VRING_BASE) → snapshot file → reinit on
//              the same device, with requests in flight; every sector intact
//   resume     stop → resume (VHOST_VDPA_RESUME) with requests in flight; every sector intact
//   second     the same, reinit onto blk1 (it maps the same memfd arena through its own IOTLB);
//              afterwards each numbered sector is on exactly one of the two RAM disks
//   nosuspend  ?suspend=0: stop({ mechanism: 'backend' }) refused with E_STATE_UNSUPPORTED
// The host side is test/vm/vdpa-blk.test.ts.

import fs from 'node:fs';
import { BlkDriver, type BlkOpenOptions } from '../../../drivers/blk/index.js';
import { openTransport } from '../../../lib/open.js';
import { VhostVdpaTransport } from '../../../lib/transport/vhost-vdpa/transport.js';
import { readSnapshotFile, writeSnapshotFile } from '../../../lib/virtio/snapshot/index.js';
import { expectErrorAsync, report, step } from './report.js';
import { sectorBytes } from './blk-layout.js';

interface DeviceEntry { name: string; deviceId: number; dev: string }
const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
const devOf = (name: string): string => `vhost-vdpa:${devices.find((d) => d.name === name)!.dev}`;
const BLK0 = devOf('blk0');
const BLK1 = devOf('blk1');
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const SNAP = '/tmp/vdpa-blk.snapshot.json';

async function openBlk(address: string, options: BlkOpenOptions = {}): Promise<BlkDriver> {
  const dev = await openTransport(address);
  return BlkDriver.open(dev.transport, { maxTransfer: 16 * 1024, ...options });
}

/** Numbered single-sector writes; `midway` runs after the first half is issued, with those in flight. */
async function writesAround(blk: BlkDriver, first: number, count: number, tag: number,
  midway: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
  const half = Math.floor(count / 2);
  const done = new Array<number>(count).fill(0);
  const issue = (i: number): Promise<void> => blk.write(first + i, sectorBytes(first + i, tag)).then(() => { done[i]!++; });
  const early = Array.from({ length: half }, (_, i) => issue(i));
  // The stop comes with requests in flight and after the device has carried out some (the
  // notification of a batch goes from a microtask: without the wait the stop could come first).
  for (let spins = 0; spins < 1000 && (blk.requests.vq.inFlight === 0 || !done.some((n) => n > 0)); spins++) {
    await new Promise(setImmediate);
  }
  const inFlightAtStop = blk.requests.vq.inFlight;
  const info = await midway();
  const late = Array.from({ length: count - half }, (_, i) => issue(half + i));
  await Promise.all([...early, ...late]);
  await blk.flush();
  return { ...info, inFlightAtStop, written: count, completedOnce: done.filter((n) => n === 1).length };
}

async function intactOn(blk: BlkDriver, first: number, count: number, tag: number): Promise<number[]> {
  const on: number[] = [];
  for (let i = 0; i < count; i++) if (same(await blk.read(first + i, 1), sectorBytes(first + i, tag))) on.push(i);
  return on;
}

async function main(): Promise<void> {
  await step('info', async () => {
    const blk = await openBlk(BLK0);
    try {
      const t = blk.device.transport as VhostVdpaTransport;
      return { address: BLK0, deviceType: t.deviceType, numQueues: t.numQueues, configLength: t.configLength,
        backendFeatures: t.backendFeatures, offered: t.offeredBackendFeatures, iovaRange: t.iovaRange,
        mechanisms: blk.device.mechanisms(), capacity: blk.capacitySectors, layout: blk.device.layout };
    } finally {
      await blk.close();
    }
  });

  for (const [mode, first] of [['msix', 64], ['poll', 192]] as const) {
    await step('io', async () => {
      const blk = await openBlk(BLK0, { interrupts: mode });
      try {
        const data = Uint8Array.from({ length: 64 * 512 }, (_, i) => (i * 7 + first) & 0xff);
        await blk.write(first, data);
        await blk.flush();
        const back = await blk.read(first, 64);
        return { mode, interrupts: blk.device.interruptMode, readBack: same(back, data), sectors: 64 };
      } finally {
        await blk.close();
      }
    });
  }

  await step('same', async () => {
    const blk = await openBlk(BLK0);
    try {
      const r = await writesAround(blk, 1024, 96, 5, async () => {
        const mechanism = await blk.stop({ mechanism: 'auto' });
        const t = blk.device.transport as VhostVdpaTransport;
        const stop = t.lastStop;
        writeSnapshotFile(SNAP, blk.snapshot());
        const snap = readSnapshotFile(SNAP);
        await blk.reinit(snap);
        return { mechanism, stop, snapQueues: snap.queues.map((q) => ({ avail: q.availState, used: q.usedState, inFlight: q.inFlight })), phase: blk.device.phase };
      });
      return { ...r, intact: (await intactOn(blk, 1024, 96, 5)).length };
    } finally {
      await blk.close();
    }
  });

  await step('resume', async () => {
    const blk = await openBlk(BLK0);
    try {
      const r = await writesAround(blk, 1536, 64, 6, async () => {
        const mechanism = await blk.stop({ mechanism: 'backend' });
        await blk.resume();
        return { mechanism, phase: blk.device.phase };
      });
      return { ...r, intact: (await intactOn(blk, 1536, 64, 6)).length };
    } finally {
      await blk.close();
    }
  });

  await step('second', async () => {
    const source = await openTransport(BLK0);
    const blk = await BlkDriver.open(source.transport, { maxTransfer: 16 * 1024 });
    const target = await openTransport(BLK1, { shareWith: source });
    let r: Record<string, unknown>;
    try {
      r = await writesAround(blk, 2048, 120, 7, async () => {
        const mechanism = await blk.stop();
        const snap = blk.snapshot();
        writeSnapshotFile(SNAP, snap);
        await blk.reinit(readSnapshotFile(SNAP), { target: target.transport });
        return { mechanism, now: blk.device.address, snapInFlight: snap.queues[0]?.inFlight };
      });
      source.transport.close();
      const onTarget = await intactOn(blk, 2048, 120, 7);
      await blk.close();
      const again = await openBlk(BLK0);
      const onSource = await intactOn(again, 2048, 120, 7);
      await again.close();
      const both = onTarget.filter((i) => onSource.includes(i)).length;
      return { ...r, onSource: onSource.length, onTarget: onTarget.length, onBoth: both, onEither: new Set([...onSource, ...onTarget]).size };
    } finally {
      source.transport.close();
      await blk.close();
    }
  });

  const nosuspend = await openBlk(`${BLK0}?suspend=0`);
  await expectErrorAsync('nosuspend', () => nosuspend.stop({ mechanism: 'backend' }), { mechanisms: nosuspend.device.mechanisms() });
  await nosuspend.close();

  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

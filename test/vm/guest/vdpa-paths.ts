// Runs inside the test VM's vdpa profile booted with vdpa_sim.use_va=0 vdpa_sim.batch_mapping=0
// vdpa_sim_blk.shared_backend=1 (test/vm/vdpa-paths.test.ts): vhost-vdpa pins the pages of each
// IOTLB update (vhost_vdpa_pa_map, bounded by RLIMIT_MEMLOCK: 8 MiB here), the parent gets
// per-update dma_map, and blk0 and blk1 share one RAM disk.
//   iotlb-memlock  the default 64 MiB arena is refused by the IOTLB: E_VDPA_IOTLB at open
//   io             ?arena=2: checksummed blk I/O through the pinned pages
//   same           stop → snapshot → reinit on the same device with requests in flight
//   rehearse-to    `uvirtio rehearse` blk0 ⇄ blk1 (one disk; `ulimit -l` raised for the two pinnings): every request exactly once
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { BlkDriver } from '../../../drivers/blk/index.js';
import { openTransport } from '../../../lib/open.js';
import { expectErrorAsync, report, step } from './report.js';
import { sectorBytes } from './blk-layout.js';

interface DeviceEntry { name: string; dev: string }
const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
const devOf = (name: string): string => `vhost-vdpa:${devices.find((d) => d.name === name)!.dev}`;
const BLK0 = devOf('blk0');
const BLK1 = devOf('blk1');
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

async function main(): Promise<void> {
  report('params', {
    useVa: fs.readFileSync('/sys/module/vdpa_sim/parameters/use_va', 'utf8').trim(),
    batch: fs.readFileSync('/sys/module/vdpa_sim/parameters/batch_mapping', 'utf8').trim(),
    shared: fs.readFileSync('/sys/module/vdpa_sim_blk/parameters/shared_backend', 'utf8').trim(),
  });
  await expectErrorAsync('iotlb-memlock', () => openTransport(BLK0));
  await step('io', async () => {
    const blk = await BlkDriver.open((await openTransport(`${BLK0}?arena=2`)).transport, { maxTransfer: 16 * 1024 });
    try {
      const data = Uint8Array.from({ length: 32 * 512 }, (_, i) => (i * 5 + 1) & 0xff);
      await blk.write(100, data);
      await blk.flush();
      return { readBack: same(await blk.read(100, 32), data) };
    } finally {
      await blk.close();
    }
  });
  await step('same', async () => {
    const blk = await BlkDriver.open((await openTransport(`${BLK0}?arena=2`)).transport, { maxTransfer: 16 * 1024 });
    try {
      const writes = Array.from({ length: 48 }, (_, i) => blk.write(3000 + i, sectorBytes(3000 + i, 9)));
      for (let spins = 0; spins < 1000 && blk.requests.vq.inFlight < 8; spins++) await new Promise(setImmediate);
      const inFlightAtStop = blk.requests.vq.inFlight;
      const mechanism = await blk.stop();
      await blk.reinit(blk.snapshot());
      await Promise.all(writes);
      let intact = 0;
      for (let i = 0; i < 48; i++) if (same(await blk.read(3000 + i, 1), sectorBytes(3000 + i, 9))) intact++;
      return { mechanism, inFlightAtStop, intact };
    } finally {
      await blk.close();
    }
  });
  // Each device pins the shared arena for itself (two arenas' worth, under a raised limit), and with
  // batch_mapping=0 each physically contiguous piece is one entry of vdpa_sim's IOTLB (max_iotlb_entries
  // 2048): 6 MiB (1536 pages) fits however the pages lie; 16 MiB did not always.
  const r = spawnSync('sh', ['-c', `ulimit -l 65536 && exec "${process.execPath}" bin/uvirtio.js rehearse --device '${BLK0}?arena=6' --to '${BLK1}?arena=6' --cycles 6 --inflight 8 --json`],
    { encoding: 'utf8', timeout: 180_000 });
  let json: unknown = null;
  try {
    json = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
  } catch {
    json = null;
  }
  report('rehearse-to', { status: r.status, json, stderr: r.stderr.slice(-1500) });
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

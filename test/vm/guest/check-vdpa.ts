// Runs inside the test VM's vdpa profile: `uvirtio check --json --junit FILE` on vdpa_sim_blk and
// vdpa_sim_net over vhost-vdpa, with a scratch sector on the blk device. Before and after the blk
// run it fills sectors 0 .. FILLED-1 (check-disk.ts) and hashes the first HASHED sectors of the
// simulator's RAM disk through BlkDriver, so the host can tell that only the scratch sector was
// written (and written back). The host side is test/vm/vdpa-check.test.ts.

import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { BlkDriver } from '../../../drivers/blk/index.js';
import { openTransport } from '../../../lib/open.js';
import { SCRATCH_SECTOR, fill } from './check-disk.js';
import { report, step } from './report.js';

/** Sectors hashed before and after the check (4 MiB of the 128 MiB RAM disk, sector 0 on). */
const HASHED = 8192;
/** Bound on one `uvirtio check` run (killed after it; the host asserts a smaller one). */
const RUN_BOUND_MS = 150_000;

interface DeviceEntry { name: string; dev: string }
const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
const addressOf = (name: string): string => `vhost-vdpa:${devices.find((d) => d.name === name)!.dev}`;

/** SHA-256 of sectors 0 .. HASHED-1, after writing the fill when `write`. */
async function hashDisk(address: string, write: boolean): Promise<Record<string, unknown>> {
  const dev = await openTransport(address);
  const blk = await BlkDriver.open(dev.transport, { depth: 4, maxTransfer: 64 * 1024 });
  try {
    if (write) await blk.write(0, fill(0));
    const h = createHash('sha256');
    for (let s = 0; s < HASHED; s += 128) h.update(await blk.read(s, 128));
    return { address, sectors: HASHED, sha256: h.digest('hex') };
  } finally {
    await blk.close();
    dev.transport.close();
  }
}

function check(name: string, type: string, blk: boolean): void {
  const address = addressOf(name);
  const junit = `/tmp/check-${name}.xml`;
  fs.rmSync(junit, { force: true });
  const args = ['bin/uvirtio.js', 'check', address, '--json', '--junit', junit, ...(blk ? ['--scratch-sector', String(SCRATCH_SECTOR)] : [])];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: RUN_BOUND_MS, killSignal: 'SIGKILL' });
  report('check', {
    name, type, address, status: r.status ?? (r.signal ? 128 + 9 : null), stdout: r.stdout, stderr: r.stderr.slice(-2000),
    junit: fs.existsSync(junit) ? fs.readFileSync(junit, 'utf8') : null, ms: Date.now() - t0,
  });
}

async function main(): Promise<void> {
  await step('hash-before', () => hashDisk(addressOf('blk0'), true));
  check('blk0', 'blk', true);
  await step('hash-after', () => hashDisk(addressOf('blk0'), false));
  check('net0', 'net', false);
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

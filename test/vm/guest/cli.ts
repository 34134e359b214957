// Runs inside the test VM (viommu, with thirdBlkArgs and notViableArgs from test/vm/vm-run.ts):
// the `uvirtio` command on vfio: addresses, as a migration engineer would script it, and the
// errors a person meets with bad input. Each run is reported with its exit status and the JSON it
// printed. The host side is test/vm/cli.test.ts.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openTransport } from '../../../lib/open.js';
import { bindVfio, unbindVfio, VfioPciFunction } from '../../../lib/vfio/index.js';
import { VfioGroup } from '../../../lib/vfio/group.js';
import { expectError, expectErrorAsync, report, step } from './report.js';

const NOT_VIABLE = '0000:07:02.0'; // test/vm/vm-run.ts NOT_VIABLE_BDF

/** Runs a node program (the CLI, or an example as its header says) and reports its exit status and last JSON line. */
function runNode(check: 'cli' | 'example', name: string, args: string[], program: string[]): void {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [...program, ...args], { encoding: 'utf8', timeout: 120_000 });
  let json: unknown = null;
  try {
    json = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '');
  } catch {
    json = null;
  }
  report(check, { name, args, status: r.status, json, stderr: r.stderr.slice(-2000), ms: Date.now() - t0 });
}

const uvirtio = (name: string, args: string[]): void => runNode('cli', name, args, ['bin/uvirtio.js']);

/**
 * Starts `uvirtio ARGS`, sends `signal` once it printed its first line plus `afterMs`, and reports
 * the exit status and how long after the signal the process ended.
 */
async function interrupted(name: string, args: string[], signal: 'SIGINT' | 'SIGTERM', afterMs: number): Promise<void> {
  const child = spawn(process.execPath, ['bin/uvirtio.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  await new Promise<void>((resolve) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', () => resolve());
  });
  await new Promise((r) => setTimeout(r, afterMs));
  const sentAt = Date.now();
  const running = child.exitCode === null;
  child.kill(signal);
  const status = await new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 + (sig === 'SIGINT' ? 2 : 15) : null)));
  });
  report('cli-signal', { name, args, signal, running, status, ms: Date.now() - sentAt, stderr: stderr.slice(-1000) });
}
const example = (name: string, args: string[]): void => runNode('example', name, args, []);

async function main(): Promise<void> {
  // A driver the SDK does not ship (examples/rng-driver.ts) on QEMU's virtio-rng-pci.
  example('rng-driver', ['dist/examples/rng-driver.js', 'vfio:0000:08:00.0', '4096']); // test/vm/vm-run.ts RNG_BDF
  // info: every function offers quiesce only (QEMU 7.2: no RING_STATE, no SUSPEND).
  uvirtio('info-split-blk', ['info', 'vfio:0000:01:00.0', '--json']);
  uvirtio('info-packed-net', ['info', '04:00.0', '--json']); // a bare BDF means vfio (the domain may be left out)

  // rehearse: auto falls back to quiesce; on one device, then between two of the same kind.
  uvirtio('rehearse-split', ['rehearse', '--device', 'vfio:0000:01:00.0', '--mechanism', 'auto', '--json']);
  uvirtio('rehearse-packed', ['rehearse', '--device', 'vfio:0000:02:00.0', '--mechanism', 'auto', '--json']);
  // A second rehearsal on the same disk: the first one's sectors carry another run id (no blanking needed).
  uvirtio('rehearse-to', ['rehearse', '--device', 'vfio:0000:01:00.0', '--to', 'vfio:0000:05:00.0', '--mechanism', 'auto', '--json']);
  // Soak: ≥ 20 stop/restore cycles at random points with requests in flight, ping-pong between two
  // functions on the same image, and 20 on the packed one with its own queues.
  uvirtio('soak-to', ['rehearse', '--device', 'vfio:0000:01:00.0', '--to', 'vfio:0000:05:00.0', '--cycles', '24', '--inflight', '8', '--seed', '11', '--json']);
  uvirtio('soak-packed', ['rehearse', '--device', 'vfio:0000:02:00.0', '--cycles', '20', '--inflight', '8', '--seed', '12', '--json']);
  // Ctrl-C mid-rehearsal on VFIO: ends within 2 s with 130/143; the function opens and works afterwards.
  await interrupted('sigint-rehearse', ['rehearse', '--device', 'vfio:0000:01:00.0', '--cycles', '1000', '--inflight', '8'], 'SIGINT', 800);
  await interrupted('sigterm-rehearse', ['rehearse', '--device', 'vfio:0000:01:00.0', '--to', 'vfio:0000:05:00.0', '--cycles', '1000'], 'SIGTERM', 500);
  uvirtio('after-signal', ['rehearse', '--device', 'vfio:0000:01:00.0', '--cycles', '2', '--json']);
  uvirtio('rehearse-to-refused', ['rehearse', '--device', 'vfio:0000:02:00.0', '--to', 'vfio:0000:01:00.0', '--cycles', '2', '--json']);
  uvirtio('rehearse-ring-state', ['rehearse', '--device', 'vfio:0000:01:00.0', '--mechanism', 'ring-state', '--cycles', '1', '--json']);

  // Bad input, through the API the CLI uses (lib/open.ts) and through the CLI where the exit status matters.
  await expectErrorAsync('open-malformed', () => openTransport('vfio:00:02'));
  await expectErrorAsync('open-no-device', () => openTransport('vfio:0000:00:1e.0'));
  await expectErrorAsync('open-not-virtio', () => openTransport('0000:00:1f.0'));
  await step('unbind', () => unbindVfio('0000:04:00.0'));
  uvirtio('info-not-bound', ['info', 'vfio:0000:04:00.0', '--json']);
  await step('rebind', () => bindVfio('0000:04:00.0'));
  await step('open-rebound', async () => {
    const dev = await openTransport('vfio:0000:04:00.0');
    dev.transport.close();
    return { address: dev.address };
  });
  uvirtio('info-not-viable', ['info', `vfio:${NOT_VIABLE}`, '--json']);
  expectError('open-not-viable', () => VfioPciFunction.open(NOT_VIABLE));
  // The kernel's own verdict (VFIO_GROUP_GET_STATUS without VIABLE), past the sysfs check.
  expectError('kernel-not-viable', () => {
    const id = Number(path.basename(fs.readlinkSync(`/sys/bus/pci/devices/${NOT_VIABLE}/iommu_group`)));
    new VfioGroup(`/dev/vfio/${id}`, id, false).close();
  });
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});

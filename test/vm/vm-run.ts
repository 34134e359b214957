// Host side of the VM tier: boots the test VM through scripts/vm/run.mjs (the same runner as
// `npm run vm`), runs a guest program and collects the "UVT <json>" lines it prints
// (test/vm/guest/report.ts).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (this file runs from dist/test/vm/). */
export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export type GuestResult = Record<string, unknown> & { check: string };

export interface VmRun {
  status: number;
  results: GuestResult[];
  output: string;
  stderr: string;
  workDir: string;
  ms: number;
  /** Seconds from the guest kernel's start to the command's start (from the runner's summary). */
  guestRunAt: number | null;
}

/** Why the VM tier cannot run here, or null when it can. */
export function vmUnavailable(): string | null {
  if (spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { stdio: 'ignore' }).status !== 0) {
    return 'qemu-system-x86_64 not found (run scripts/vm/install-deps.sh)';
  }
  return null;
}

export type Profile = 'viommu' | 'noiommu' | 'vdpa';

export interface RunOptions {
  timeoutSec?: number;
  /** More QEMU arguments for this boot (given the work directory that holds the disk images). */
  qemuArgs?: (workDir: string, profile: Profile) => string[];
  /** More environment for the runner (e.g. UVIRTIO_VM_BOOT_TIMEOUT). */
  env?: Record<string, string>;
  /** More words for the guest kernel's command line; `<module>.<param>=<value>` reaches that module's insmod. */
  kernelArgs?: string[];
}

/**
 * A third virtio-blk function (split ring, one queue, like 0000:01:00.0) on the same image as
 * 0000:01:00.0 (blk0.img), behind its own root port: the target of a migration between two devices
 * whose storage is shared. The second opener of the image does not lock it; both QEMU block nodes
 * go through the host's page cache (raw, cache=writeback), so each sees the other's writes.
 * The guest finds it at 0000:05:00.0 (the bus after the four functions of scripts/vm/qemu.mjs).
 */
export function thirdBlkArgs(workDir: string, profile: Profile): string[] {
  const iommu = profile === 'viommu' ? ',iommu_platform=on,ats=on' : '';
  return [
    '-device', 'pcie-root-port,id=rp9,chassis=9,slot=9,addr=09.0',
    '-drive', `file=${path.join(workDir, 'blk0.img')},if=none,id=d9,format=raw,cache=writeback,file.locking=off`,
    '-device', `virtio-blk-pci,disable-legacy=on,drive=d9,bus=rp9,addr=00.0,num-queues=1${iommu}`,
  ];
}

/**
 * A virtio-rng function whose IOMMU group is not viable: it sits behind a PCIe-to-PCI bridge
 * together with a QEMU pci-serial (1b36:0002), which the guest kernel's built-in 8250_pci driver
 * takes. Functions behind a conventional bridge share the bridge's requester ID, so Linux puts them
 * in one group, and VFIO refuses a group in which a function has a driver other than vfio-pci.
 * The bridge's root port comes after thirdBlkArgs's, so the guest sees the serial at 0000:07:01.0
 * and the rng at 0000:07:02.0 (its group is viable without the IOMMU: noiommu groups are per function).
 */
export const NOT_VIABLE_BDF = '0000:07:02.0';
export function notViableArgs(_workDir: string, profile: Profile): string[] {
  const iommu = profile === 'viommu' ? ',iommu_platform=on' : '';
  return [
    '-device', 'pcie-root-port,id=rp10,chassis=10,slot=10,addr=0a.0',
    '-device', 'pcie-pci-bridge,id=br0,bus=rp10,addr=00.0',
    '-device', 'pci-serial,bus=br0,addr=01.0',
    '-device', `virtio-rng-pci,disable-legacy=on,bus=br0,addr=02.0${iommu}`,
  ];
}

/**
 * QEMU's virtio-rng-pci behind its own root port (a viable group), for the driver written outside
 * the SDK (examples/rng-driver.ts). Its port comes after notViableArgs's, so with both the guest
 * sees it at 0000:08:00.0.
 */
export const RNG_BDF = '0000:08:00.0';
export function rngArgs(_workDir: string, profile: Profile): string[] {
  const iommu = profile === 'viommu' ? ',iommu_platform=on,ats=on' : '';
  return [
    '-device', 'pcie-root-port,id=rp11,chassis=11,slot=11,addr=0b.0',
    '-device', `virtio-rng-pci,disable-legacy=on,bus=rp11,addr=00.0${iommu}`,
  ];
}

export function runInVm(profile: Profile, command: string, options: RunOptions | number = {}): Promise<VmRun> {
  const { timeoutSec = 240, qemuArgs, env, kernelArgs = [] } = typeof options === 'number' ? { timeoutSec: options } : options;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `uvirtio-vm-${profile}-`));
  const extra = [...(qemuArgs?.(workDir, profile) ?? []).flatMap((a) => ['--qemu-arg', a]), ...kernelArgs.flatMap((a) => ['--kernel-arg', a])];
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(PROJECT, 'scripts', 'vm', 'run.mjs'), '--profile', profile,
      '--workdir', workDir, '--timeout', String(timeoutSec), ...extra, '--', command], { cwd: PROJECT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let output = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      const results = output.split('\n').filter((l) => l.startsWith('UVT ')).map((l) => JSON.parse(l.slice(4)) as GuestResult);
      const at = /command started ([\d.]+) s after boot/.exec(stderr);
      resolve({ status: code ?? -1, results, output, stderr, workDir, ms: Date.now() - t0, guestRunAt: at ? Number(at[1]) : null });
    });
  });
}

/** The results of one check (in order), e.g. every "msix" line. */
export function resultsOf(run: VmRun, check: string): GuestResult[] {
  return run.results.filter((r) => r.check === check);
}

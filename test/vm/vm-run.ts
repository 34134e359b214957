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

export function runInVm(profile: 'viommu' | 'noiommu', command: string, timeoutSec = 240): Promise<VmRun> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `uvirtio-vm-${profile}-`));
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(PROJECT, 'scripts', 'vm', 'run.mjs'), '--profile', profile,
      '--workdir', workDir, '--timeout', String(timeoutSec), '--', command], { cwd: PROJECT, stdio: ['ignore', 'pipe', 'pipe'] });
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

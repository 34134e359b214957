#!/usr/bin/env node
// Boots the test VM and runs a command in it:
//   npm run vm -- [--profile viommu|noiommu] [--peers] [--qemu-arg ARG]... [--workdir DIR] [--timeout SEC] -- COMMAND...
// --peers adds the benchmark peers to the initramfs (fio, the C driver, virtio_blk: scripts/vm/peers.mjs).
// The command runs in the guest's /project (this project's package.json, dist/, bin/ and production
// node_modules) with node on PATH and `uvirtio` when bin/uvirtio.js exists; every virtio function
// is already bound to vfio-pci. Its output is streamed here; the exit status is the command's.
// Disk images stay in the work directory (printed) for the caller to check after the VM exits.
//
// Environment: UVIRTIO_VM_ACCEL (tcg | kvm), UVIRTIO_VM_SMP, UVIRTIO_VM_CACHE, UVIRTIO_VM_KERNEL.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Buffer } from 'node:buffer';
import { clearTimeout, setTimeout } from 'node:timers';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { log, which } from './common.mjs';
import { ensureInitramfs } from './initramfs.mjs';
import { ensureKernel } from './kernel.mjs';
import { ensureNoIommuVfio } from './noiommu.mjs';
import { DEVICES, PROFILES, qemuArgs } from './qemu.mjs';

const DISK_BYTES = 16 * 1024 * 1024;
const COMMAND_LINE_MAX = 1800; // the x86 kernel command line holds 2048 bytes

function usage(msg) {
  process.stderr.write(`${msg ? `vm: ${msg}\n` : ''}usage: npm run vm -- [--profile viommu|noiommu] [--peers] [--qemu-arg ARG]... ` +
    '[--workdir DIR] [--timeout SEC] -- COMMAND...\n');
  process.exit(2);
}

export function parseArgs(argv) {
  const opts = { profile: 'viommu', peers: false, qemuArgs: [], workDir: null, timeout: 240, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === '--') { opts.command = argv.slice(i + 1); break; }
    else if (a === '--profile') opts.profile = value();
    else if (a === '--peers') opts.peers = true;
    else if (a === '--qemu-arg') opts.qemuArgs.push(value());
    else if (a === '--workdir') opts.workDir = value();
    else if (a === '--timeout') opts.timeout = Number(value());
    else if (a === '-h' || a === '--help') usage();
    else { opts.command = argv.slice(i); break; }
  }
  if (!PROFILES.includes(opts.profile)) usage(`unknown profile ${opts.profile} (${PROFILES.join(', ')})`);
  if (!opts.command.length) usage('no command');
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number of seconds');
  return opts;
}

const shellQuote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/** Builds (or reuses) everything the profile needs: kernel, vmlinux, initramfs. */
export function prepare(profile, { peers = false } = {}) {
  const t0 = Date.now();
  const kernel = ensureKernel();
  const vfioKo = profile === 'noiommu' ? ensureNoIommuVfio(kernel) : undefined;
  const initrd = ensureInitramfs(kernel, profile, vfioKo, { peers });
  return { kernel, initrd, prepareMs: Date.now() - t0 };
}

function makeDisks(workDir) {
  for (const d of DEVICES.filter((x) => x.disk)) {
    const fd = fs.openSync(path.join(workDir, d.disk), 'w');
    fs.ftruncateSync(fd, DISK_BYTES);
    fs.closeSync(fd);
  }
}

/** One boot. Resolves with the exit status, or null when the guest never reached its command. */
function boot({ profile, kernel, initrd, workDir, script, extra, timeout, onOutput }) {
  // no_timer_check: on a loaded host the guest's IO-APIC timer check can miss its window under TCG
  // and panic ("timer doesn't work through Interrupt-remapped IO-APIC"), twice in a row.
  const cmdline = ['console=ttyS0', 'quiet', 'panic=-1', 'rdinit=/init', 'mitigations=off', 'no_timer_check',
    ...(profile === 'viommu' ? ['intel_iommu=on'] : []),
    `uvirtio.profile=${profile}`, `uvirtio.cmd=${Buffer.from(script).toString('base64')}`].join(' ');
  if (cmdline.length > COMMAND_LINE_MAX) throw new Error(`the command is too long for the kernel command line (${cmdline.length} bytes)`);
  fs.rmSync(path.join(workDir, 'console.log'), { force: true });
  const args = qemuArgs({ profile, vmlinux: kernel.vmlinux, initrd, workDir, cmdline, extra });
  fs.writeFileSync(path.join(workDir, 'qemu-cmdline.txt'), `qemu-system-x86_64 ${args.map(shellQuote).join(' ')}\n`);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.setEncoding('utf8'); // decodes across chunks: a chunk can end inside a multi-byte character
    child.stdout.on('data', (s) => onOutput(s.replace(/\r/g, '')));
    child.stderr.on('data', (b) => { stderr += b.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeout * 1000);
    child.on('exit', () => {
      clearTimeout(timer);
      const consoleLog = fs.existsSync(path.join(workDir, 'console.log')) ? fs.readFileSync(path.join(workDir, 'console.log'), 'utf8') : '';
      const exit = /UVIRTIO-EXIT (\d+)/.exec(consoleLog);
      const ran = /UVIRTIO-RUN ([\d.]+)/.exec(consoleLog);
      resolve({ status: exit ? Number(exit[1]) : null, reachedInit: consoleLog.includes('UVIRTIO-INIT'),
        guestRunAt: ran ? Number(ran[1]) : null, timedOut, stderr, consoleLog, ms: Date.now() - t0 });
    });
  });
}

/**
 * Runs `command` (argv array) in the VM. Returns { status, workDir, timings }. A boot that dies
 * before init runs is retried once; a hang is killed after `timeout` seconds.
 */
export async function runVm({ profile = 'viommu', peers = false, command, qemuArgs: extra = [], workDir = null, timeout = 240,
  onOutput = (s) => process.stdout.write(s) }) {
  if (!which('qemu-system-x86_64')) throw new Error('qemu-system-x86_64 is not installed: run scripts/vm/install-deps.sh');
  const { kernel, initrd, prepareMs } = prepare(profile, { peers });
  const dir = workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-vm-'));
  fs.mkdirSync(dir, { recursive: true });
  makeDisks(dir);
  const script = command.length === 1 ? command[0] : command.map(shellQuote).join(' ');
  let result;
  for (let attempt = 1; attempt <= 2; attempt++) {
    result = await boot({ profile, kernel, initrd, workDir: dir, script, extra, timeout, onOutput });
    if (result.status !== null || result.reachedInit) break;
    log(`boot ${attempt} failed before init${result.timedOut ? ' (timed out)' : ''}; console tail:\n${tail(result.consoleLog)}${result.stderr}`);
    if (attempt === 1) await delay(200);
  }
  if (result.status === null) {
    log(`the guest did not finish${result.timedOut ? ` within ${timeout} s (killed)` : ''}; console tail:\n${tail(result.consoleLog)}${result.stderr}`);
  }
  return { status: result.status ?? 124, workDir: dir, timings: { prepareMs, vmMs: result.ms, guestRunAt: result.guestRunAt } };
}

function tail(text, lines = 30) {
  return text.split('\n').slice(-lines).map((l) => `  | ${l}`).join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const r = await runVm(opts);
  log(`profile ${opts.profile}: prepare ${(r.timings.prepareMs / 1000).toFixed(1)} s, VM ${(r.timings.vmMs / 1000).toFixed(1)} s` +
    `${r.timings.guestRunAt !== null ? `, command started ${r.timings.guestRunAt.toFixed(2)} s after boot` : ''}; exit ${r.status}; work dir ${r.workDir}`);
  process.exit(r.status);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`vm: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(125);
  });
}

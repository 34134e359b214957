#!/usr/bin/env node
// Boots the test VM and runs a command in it:
//   npm run vm -- [--profile viommu|noiommu|vdpa] [--peers] [--qemu-arg ARG]... [--kernel-arg ARG]... [--workdir DIR]
//                 [--timeout SEC] -- COMMAND...
// --kernel-arg adds to the guest kernel's command line; <module>.<param>=<value> reaches the module's
// insmod (scripts/vm/init.sh), e.g. --kernel-arg vdpa_sim.use_va=0.
// --peers adds the benchmark peers to the initramfs (fio, the C driver, virtio_blk: scripts/vm/peers.mjs).
// The command runs in the guest's /project (this project's package.json, dist/, bin/ and production
// node_modules) with node on PATH and `uvirtio` when bin/uvirtio.js exists; every virtio function
// is already bound to vfio-pci (vdpa profile: no virtio functions; the kernel's vdpa_sim devices on
// /dev/vhost-vdpa-N, listed in /run/vdpa-devices.json: scripts/vm/vdpa.mjs). Its output is streamed
// here; the exit status is the command's. A boot that does not reach the command within
// UVIRTIO_VM_BOOT_TIMEOUT seconds (default 90), or dies before it, is retried once (reported).
// Disk images stay in the work directory (printed) for the caller to check after the VM exits.
//
// Environment: UVIRTIO_VM_ACCEL (tcg | kvm), UVIRTIO_VM_SMP, UVIRTIO_VM_CACHE, UVIRTIO_VM_KERNEL,
// UVIRTIO_VM_VDPA_KERNEL (the vdpa profile's 6.12 version), UVIRTIO_VM_BOOT_TIMEOUT.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Buffer } from 'node:buffer';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { log, which } from './common.mjs';
import { ensureInitramfs } from './initramfs.mjs';
import { ensureKernel } from './kernel.mjs';
import { ensureNoIommuVfio } from './noiommu.mjs';
import { DEVICES, PROFILES, qemuArgs } from './qemu.mjs';
import { ensureVdpa } from './vdpa.mjs';

const DISK_BYTES = 16 * 1024 * 1024;
const COMMAND_LINE_MAX = 1800; // the x86 kernel command line holds 2048 bytes
/** Seconds a boot may take to reach the guest command before it is killed and retried (once). */
const BOOT_TIMEOUT = Number(process.env.UVIRTIO_VM_BOOT_TIMEOUT ?? 90);
const CONSOLE_POLL_MS = 250;

function usage(msg) {
  process.stderr.write(`${msg ? `vm: ${msg}\n` : ''}usage: npm run vm -- [--profile viommu|noiommu|vdpa] [--peers] [--qemu-arg ARG]... [--kernel-arg ARG]... ` +
    '[--workdir DIR] [--timeout SEC] -- COMMAND...\n');
  process.exit(2);
}

export function parseArgs(argv) {
  const opts = { profile: 'viommu', peers: false, qemuArgs: [], kernelArgs: [], workDir: null, timeout: 240, command: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === '--') { opts.command = argv.slice(i + 1); break; }
    else if (a === '--profile') opts.profile = value();
    else if (a === '--peers') opts.peers = true;
    else if (a === '--qemu-arg') opts.qemuArgs.push(value());
    else if (a === '--kernel-arg') opts.kernelArgs.push(value());
    else if (a === '--workdir') opts.workDir = value();
    else if (a === '--timeout') opts.timeout = Number(value());
    else if (a === '-h' || a === '--help') usage();
    else { opts.command = argv.slice(i); break; }
  }
  if (!PROFILES.includes(opts.profile)) usage(`unknown profile ${opts.profile} (${PROFILES.join(', ')})`);
  if (!opts.command.length) usage('no command');
  if (opts.peers && opts.profile === 'vdpa') usage('--peers needs the viommu or noiommu profile');
  for (const k of opts.kernelArgs) if (!/^[\w.,:=/+-]+$/.test(k)) usage(`--kernel-arg ${JSON.stringify(k)}: one word of letters, digits and .,:=/+-_`);
  if (!(opts.timeout > 0)) usage('--timeout must be a positive number of seconds');
  return opts;
}

const shellQuote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

/** Builds (or reuses) everything the profile needs: kernel, vmlinux, initramfs. */
export function prepare(profile, { peers = false } = {}) {
  const t0 = Date.now();
  if (profile === 'vdpa') {
    if (peers) throw new Error('the benchmark peers need the viommu or noiommu profile');
    const { kernel, modulesPart } = ensureVdpa();
    return { kernel, initrd: ensureInitramfs(kernel, profile, undefined, { modulesPart }), prepareMs: Date.now() - t0 };
  }
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

/**
 * One boot. Resolves with the exit status, or null when the guest never finished its command; a boot
 * whose console shows no UVIRTIO-RUN within BOOT_TIMEOUT seconds is killed (`bootTimedOut`).
 */
function boot({ profile, kernel, initrd, workDir, script, extra, kernelArgs, timeout, onOutput }) {
  // no_timer_check: on a loaded host the guest's IO-APIC timer check can miss its window under TCG
  // and panic ("timer doesn't work through Interrupt-remapped IO-APIC"), twice in a row.
  const cmdline = ['console=ttyS0', 'quiet', 'panic=-1', 'rdinit=/init', 'mitigations=off', 'no_timer_check',
    ...(profile === 'viommu' ? ['intel_iommu=on'] : []), ...kernelArgs,
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
    let bootTimedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeout * 1000);
    const consoleFile = path.join(workDir, 'console.log');
    const watch = setInterval(() => {
      let text = '';
      try { text = fs.readFileSync(consoleFile, 'utf8'); } catch { /* not written yet */ }
      if (text.includes('UVIRTIO-RUN ')) clearInterval(watch);
      else if (Date.now() - t0 > BOOT_TIMEOUT * 1000) { bootTimedOut = true; clearInterval(watch); child.kill('SIGKILL'); }
    }, CONSOLE_POLL_MS);
    child.on('exit', () => {
      clearTimeout(timer);
      clearInterval(watch);
      const consoleLog = fs.existsSync(path.join(workDir, 'console.log')) ? fs.readFileSync(path.join(workDir, 'console.log'), 'utf8') : '';
      const exit = /UVIRTIO-EXIT (\d+)/.exec(consoleLog);
      const ran = /UVIRTIO-RUN ([\d.]+)/.exec(consoleLog);
      resolve({ status: exit ? Number(exit[1]) : null, reachedInit: consoleLog.includes('UVIRTIO-INIT'),
        guestRunAt: ran ? Number(ran[1]) : null, timedOut, bootTimedOut, stderr, consoleLog, ms: Date.now() - t0 });
    });
  });
}

/**
 * Runs `command` (argv array) in the VM. Returns { status, workDir, timings, retried }. A boot that
 * never reaches the command (dies first, or shows no UVIRTIO-RUN within BOOT_TIMEOUT s) is retried
 * once, reported on stderr; a hang after that is killed after `timeout` seconds.
 */
export async function runVm({ profile = 'viommu', peers = false, command, qemuArgs: extra = [], kernelArgs = [], workDir = null, timeout = 240,
  onOutput = (s) => process.stdout.write(s) }) {
  if (!which('qemu-system-x86_64')) throw new Error('qemu-system-x86_64 is not installed: run scripts/vm/install-deps.sh');
  const { kernel, initrd, prepareMs } = prepare(profile, { peers });
  const dir = workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-vm-'));
  fs.mkdirSync(dir, { recursive: true });
  makeDisks(dir);
  const script = command.length === 1 ? command[0] : command.map(shellQuote).join(' ');
  let result;
  let retried = false;
  for (let attempt = 1; attempt <= 2; attempt++) {
    result = await boot({ profile, kernel, initrd, workDir: dir, script, extra, kernelArgs, timeout, onOutput });
    if (result.status !== null || result.guestRunAt !== null) break;
    const why = result.bootTimedOut ? `no UVIRTIO-RUN within ${BOOT_TIMEOUT} s (UVIRTIO_VM_BOOT_TIMEOUT), killed`
      : result.timedOut ? `timed out after ${timeout} s` : `QEMU exited${result.reachedInit ? ' after init started' : ' before init'}`;
    log(`boot ${attempt} never reached the guest command (${why})${attempt === 1 ? '; retrying once' : ''}; console tail:\n${tail(result.consoleLog)}${result.stderr}`);
    if (attempt === 1) { retried = true; await delay(200); }
  }
  if (result.status === null) {
    log(`the guest did not finish${result.timedOut ? ` within ${timeout} s (killed)` : ''}; console tail:\n${tail(result.consoleLog)}${result.stderr}`);
  }
  return { status: result.status ?? 124, workDir: dir, retried, timings: { prepareMs, vmMs: result.ms, guestRunAt: result.guestRunAt } };
}

function tail(text, lines = 30) {
  return text.split('\n').slice(-lines).map((l) => `  | ${l}`).join('\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const r = await runVm(opts);
  log(`profile ${opts.profile}: prepare ${(r.timings.prepareMs / 1000).toFixed(1)} s, VM ${(r.timings.vmMs / 1000).toFixed(1)} s` +
    `${r.timings.guestRunAt !== null ? `, command started ${r.timings.guestRunAt.toFixed(2)} s after boot` : ''}${r.retried ? ' (boot retried once)' : ''}; exit ${r.status}; work dir ${r.workDir}`);
  process.exit(r.status);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`vm: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(125);
  });
}

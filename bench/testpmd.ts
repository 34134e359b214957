// DPDK's dpdk-testpmd as the peer of bench/vm-net.ts, inside the test VM: two testpmd processes on
// the two virtio-net functions (bound to vfio-pci), driven by DPDK's virtio PMD. One runs in rxonly
// mode on the receiving NIC, then one in txonly mode on the sending NIC, each with its own hugepage
// file prefix and its forwarding lcore on its own vCPU. Both print their port statistics every second
// (--stats-period 1). The rates are testpmd's own Throughput figures (Tx-pps of the sender, Rx-pps of
// the receiver: the counters' change over its TSC clock since the previous block), averaged over the
// blocks that lie wholly in the timed window; the change in the cumulative TX-packets / RX-packets
// counters over the wall-clock time between the blocks' arrival here is kept beside them as a
// cross-check (it jitters with the host's load: a block is timed when it reaches this process).

import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';

/** The wrapper scripts/vm/peers.mjs puts in the image (--peers). */
export const TESTPMD = '/usr/local/bin/dpdk-testpmd';
const HUGEPAGE_DIR = '/dev/hugepages';
/** 2 MiB hugepages reserved: two processes of MEMORY_MB each, and room for EAL's own. */
const HUGEPAGES = 160;
const MEMORY_MB = 128;
/** Bound on EAL init + port start until the first statistics block (TCG boots slowly). */
const START_MS = 90_000;
/** --stats-period, in ms. */
const PERIOD_MS = 1000;
/** Bound on testpmd's exit after SIGINT (it stops the ports and resets the devices). */
const EXIT_MS = 30_000;

/** One statistics block: cumulative counters of the process's single port, and when it arrived (ms). */
interface Block {
  at: number;
  rx: number;
  tx: number;
  rxPps: number;
  txPps: number;
}

/** Frames per second from one timed window of a testpmd pair. */
export interface PmdRates {
  /** testpmd's own Tx-pps of the sender / Rx-pps of the receiver (over its TSC clock), averaged over the timed blocks. */
  txPps: number;
  rxPps: number;
  /** Cross-check: the change in the cumulative counters over the wall-clock time between the blocks' arrival here (NaN from one block). */
  wall: { txPps: number; rxPps: number };
  /** How many statistics blocks (periods of about a second) each average is over. */
  blocks: { tx: number; rx: number };
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${(r.stderr || r.stdout).trim()}`);
}

/** Mounts hugetlbfs and reserves the 2 MiB pages both processes need (once per boot). */
function hugepages(): void {
  if (!fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === HUGEPAGE_DIR)) {
    fs.mkdirSync(HUGEPAGE_DIR, { recursive: true });
    run('mount', ['-t', 'hugetlbfs', 'nodev', HUGEPAGE_DIR]);
  }
  fs.writeFileSync('/proc/sys/vm/nr_hugepages', String(HUGEPAGES));
  const total = Number(/HugePages_Total:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  if (total < HUGEPAGES) throw new Error(`only ${total} of ${HUGEPAGES} 2 MiB hugepages could be reserved (boot the VM with more memory: -m 2048)`);
}

/** IOVA as virtual addresses behind an IOMMU; physical addresses in VFIO's no-IOMMU mode. */
function iovaMode(): 'va' | 'pa' {
  const p = '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode';
  return fs.existsSync(p) && fs.readFileSync(p, 'utf8').trim() === 'Y' ? 'pa' : 'va';
}

class Testpmd {
  readonly blocks: Block[] = [];
  private text = '';
  private readonly child: ChildProcessByStdio<null, Readable, Readable>;
  private readonly exited: Promise<number | null>;
  mac = '';

  constructor(readonly name: string, bdf: string, mainLcore: number, pmdArgs: string[]) {
    const args = ['-l', '0,1', '--main-lcore', String(mainLcore), '-n', '1', `--iova-mode=${iovaMode()}`, '--file-prefix', name,
      '-m', String(MEMORY_MB), '--no-telemetry', '-a', bdf, '--', `--stats-period=${PERIOD_MS / 1000}`, '--total-num-mbufs=8192', ...pmdArgs];
    this.child = spawn(TESTPMD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    const take = (b: Buffer): void => {
      this.text += b.toString();
      this.parse();
    };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
  }

  private parse(): void {
    const mac = /Port 0: ([0-9A-Fa-f:]{17})/.exec(this.text);
    if (mac && !this.mac) this.mac = mac[1]!;
    for (;;) {
      const m = /Port statistics[\s\S]*?RX-packets:\s+(\d+)[\s\S]*?TX-packets:\s+(\d+)[\s\S]*?Rx-pps:\s+(\d+)[\s\S]*?Tx-pps:\s+(\d+)/.exec(this.text);
      if (!m) break;
      this.blocks.push({ at: performance.now(), rx: Number(m[1]), tx: Number(m[2]), rxPps: Number(m[3]), txPps: Number(m[4]) });
      this.text = this.text.slice(m.index + m[0].length);
    }
    if (this.text.length > 1 << 20) this.text = this.text.slice(-4096);
  }

  /** The last lines it printed (for an error message). */
  tail(): string {
    return this.text.trim().split('\n').slice(-8).join(' | ');
  }

  /** Resolves when `n` statistics blocks arrived; rejects when testpmd exits first or after `ms`. */
  async waitBlocks(n: number, ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    let code: number | null | undefined;
    void this.exited.then((c) => { code = c; });
    while (this.blocks.length < n) {
      if (code !== undefined) throw new Error(`testpmd ${this.name} exited with ${code} before forwarding: ${this.tail()}`);
      if (performance.now() > deadline) throw new Error(`testpmd ${this.name}: ${this.blocks.length} of ${n} statistics blocks within ${ms} ms: ${this.tail()}`);
      await delay(50);
    }
  }

  /** SIGINT (testpmd stops forwarding, closes its port and exits), SIGKILL after EXIT_MS. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), EXIT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Rate of a cumulative counter between the first and last block. */
function rate(blocks: Block[], key: 'rx' | 'tx'): number {
  const first = blocks[0]!;
  const last = blocks[blocks.length - 1]!;
  return (last[key] - first[key]) / ((last.at - first.at) / 1000);
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * One timed window: testpmd rxonly on `rxBdf`, then testpmd txonly with `size`-byte frames on
 * `txBdf` to the receiver's MAC, for `seconds` after a first statistics block is let go by (the
 * start of forwarding). Throws with testpmd's last lines when either fails to start or exits.
 */
export async function testpmdPair(txBdf: string, rxBdf: string, size: number, seconds: number): Promise<PmdRates> {
  hugepages();
  const rx = new Testpmd('rx', rxBdf, 0, ['--forward-mode=rxonly']);
  let tx: Testpmd | undefined;
  try {
    await rx.waitBlocks(1, START_MS);
    tx = new Testpmd('tx', txBdf, 1, ['--forward-mode=txonly', `--txpkts=${size}`, ...(rx.mac ? [`--eth-peer=0,${rx.mac}`] : [])]);
    await tx.waitBlocks(1, START_MS);
    const from = tx.blocks.length; // the first block holds the start of forwarding: not timed
    await tx.waitBlocks(from + Math.ceil(seconds) + 1, (seconds + 30) * 1000);
    const txBlocks = tx.blocks.slice(from);
    const t0 = txBlocks[0]!.at;
    const t1 = txBlocks[txBlocks.length - 1]!.at;
    // A block's Throughput covers the period before it: the receiver's blocks that cover only time
    // in which the sender was forwarding (arrived a period after the first timed sender block, and
    // before the sender was stopped).
    const rxBlocks = rx.blocks.filter((b) => b.at >= t0 + PERIOD_MS - 100 && b.at <= t1 + 50);
    if (!rxBlocks.length) throw new Error(`testpmd rx printed no statistics block inside the timed window (${(t1 - t0).toFixed(0)} ms): ${rx.tail()}`);
    const wall = { txPps: rate(txBlocks, 'tx'), rxPps: rxBlocks.length > 1 ? rate(rxBlocks, 'rx') : NaN };
    return { txPps: mean(txBlocks.slice(1).map((b) => b.txPps)), rxPps: mean(rxBlocks.map((b) => b.rxPps)), wall, blocks: { tx: txBlocks.length - 1, rx: rxBlocks.length } };
  } finally {
    await tx?.stop();
    await rx.stop();
  }
}

// Test support: a qemu-storage-daemon serving a raw image over a vhost-user-blk export, in a temp
// dir of its own. Killed by its PID (never by name). Two daemons may serve the SAME image
// (locking=off): the migration tests stop the first one's rings — and wait until it has completed
// every request it fetched — before the second one serves, so they never write concurrently.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function haveDaemon(): boolean {
  return spawnSync('sh', ['-c', 'command -v qemu-storage-daemon'], { stdio: 'ignore' }).status === 0;
}

/** Whether a UNIX socket bound at `path` is listening (/proc/net/unix: Flags has __SO_ACCEPTCON, 0x10000). */
function listening(path: string): boolean {
  return fs.readFileSync('/proc/net/unix', 'utf8').split('\n').some((line) => {
    const f = line.trim().split(/\s+/);
    return f[7] === path && (parseInt(f[3] ?? '0', 16) & 0x10000) !== 0;
  });
}

export interface Image {
  dir: string;
  file: string;
  bytes: number;
  remove(): void;
}

/** A zero-filled raw image of `mib` MiB in a new temp dir. */
export function makeImage(mib = 16): Image {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uvirtio-vu-'));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, mib << 20);
  return { dir, file, bytes: mib << 20, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface DaemonOptions {
  /** Throttle the export to this many requests per second (requests then wait in the daemon). */
  iops?: number;
  numQueues?: number;
  /**
   * Host cache mode of the file node: 'buffered' (the default: page cache, aio=threads) or 'direct'
   * (O_DIRECT, cache.direct=on, aio=native — Linux AIO).
   */
  cache?: 'buffered' | 'direct';
}

export class Daemon {
  readonly socket: string;
  private readonly child: ChildProcess;
  private exited: Promise<number | null>;
  stderr = '';

  private constructor(image: Image, name: string, o: DaemonOptions) {
    this.socket = path.join(image.dir, `${name}.sock`);
    fs.rmSync(this.socket, { force: true });
    // With iops, requests pass a throttle node (QEMU block/throttle.c), so they stay in flight.
    const throttle = o.iops ? [
      '--object', `throttle-group,id=tg0,x-iops-total=${o.iops}`,
      '--blockdev', 'driver=throttle,node-name=thr0,throttle-group=tg0,file=file0',
    ] : [];
    this.child = spawn('qemu-storage-daemon', [
      '--blockdev', `driver=file,node-name=file0,filename=${image.file},locking=off${o.cache === 'direct' ? ',cache.direct=on,aio=native' : ''}`,
      ...throttle,
      '--export', `type=vhost-user-blk,id=exp0,node-name=${o.iops ? 'thr0' : 'file0'},addr.type=unix,addr.path=${this.socket},writable=on${o.numQueues ? `,num-queues=${o.numQueues}` : ''}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get address(): string {
    return `vhost-user:${this.socket}`;
  }

  /**
   * Starts a daemon and waits (bounded) until its socket listens. The socket file appears at
   * bind(2), a moment before listen(2); a connect in between is refused, so the listening state
   * is read from /proc/net/unix (flag __SO_ACCEPTCON) rather than inferred from the file.
   */
  static async start(image: Image, name = 'vhost', options: DaemonOptions = {}): Promise<Daemon> {
    const d = new Daemon(image, name, options);
    const deadline = Date.now() + 10_000;
    while (!listening(d.socket)) {
      if (d.child.exitCode !== null || Date.now() > deadline) {
        d.kill('SIGKILL');
        throw new Error(`qemu-storage-daemon did not create ${d.socket}: ${d.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return d;
  }

  /** Signals the daemon by PID and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // already gone
      }
    }
    return this.exited;
  }
}

/**
 * A fresh image of `mib` MiB served by a daemon started for test `t`; the daemon is killed and the
 * image removed when the test ends.
 */
export async function daemonForTest(t: { teardown(fn: () => unknown): void }, mib = 16, o: DaemonOptions = {}): Promise<Daemon> {
  const img = makeImage(mib);
  const d = await Daemon.start(img, 'vhost', o);
  t.teardown(async () => {
    await d.kill('SIGKILL');
    img.remove();
  });
  return d;
}

// The session agent: a background process that holds one device across separate `uvirtio`
// invocations (a VFIO device is reset when its last file descriptor closes, so something must
// hold it). It drives the device with a driver for its type, optionally keeps checked traffic
// running, and answers the CLI's requests on a UNIX socket (protocol.ts).
//
//   node dist/cli/session/agent.js --device DEV --name NAME [--traffic N]
// writes one line to file descriptor 3 — {"ready":true} or {"ready":false,"error":{…}} — and closes
// it; `uvirtio attach` waits for that line. Its stdout and stderr go to NAME.log beside the socket.

import { createServer, type Server, type Socket } from 'node:net';
import { closeSync, rmSync, writeSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { openTransport, type OpenedDevice } from '../../lib/open.js';
import { UsageError, isUvirtioError } from '../../lib/virtio/errors.js';
import { readSnapshotFile, writeSnapshotFile, type Mechanism } from '../../lib/virtio/snapshot.js';
import { openWorkload } from '../rehearsal/engine.js';
import { seededRandom } from '../rehearsal/random.js';
import { Traffic } from '../rehearsal/traffic.js';
import type { Workload } from '../rehearsal/workload.js';
import { checkName, lockDevice, runtimeDir, socketPath, unlockDevice } from './paths.js';
import type { Request, Response } from './protocol.js';

interface AgentArgs {
  device: string;
  name: string;
  traffic: number;
}

function parseArgs(argv: string[]): AgentArgs {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const device = get('--device');
  const name = get('--name');
  if (!device || !name) throw new UsageError('E_INVALID_ARGUMENT', 'the agent needs --device and --name');
  return { device, name: checkName(name), traffic: Number(get('--traffic') ?? 0) };
}

class Agent {
  private readonly devices: OpenedDevice[];
  private traffic: Traffic | null = null;
  private mechanism: Mechanism | null = null;
  private server: Server | null = null;

  constructor(private readonly args: AgentArgs, private readonly dir: string, source: OpenedDevice, private readonly work: Workload) {
    this.devices = [source];
  }

  listen(): Promise<void> {
    const path = socketPath(this.dir, this.args.name);
    rmSync(path, { force: true });
    this.server = createServer((sock) => this.serve(sock));
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => resolve());
    });
  }

  startTraffic(): void {
    if (this.args.traffic > 0) {
      this.traffic = new Traffic(this.work, { inflight: this.args.traffic, paceMs: 1 });
      this.traffic.start();
    }
  }

  private serve(sock: Socket): void {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      void this.answer(line).then((res) => sock.end(JSON.stringify(res) + '\n'));
    });
    sock.on('error', () => undefined);
  }

  private async answer(line: string): Promise<Response> {
    try {
      const req = JSON.parse(line) as Request;
      return { ok: true, result: await this.handle(req) };
    } catch (e) {
      const err = isUvirtioError(e) ? e.toJSON() : { code: 'E_INVALID_ARGUMENT' as const, message: String((e as Error)?.message ?? e) };
      return { ok: false, error: err };
    }
  }

  private status(): Record<string, unknown> {
    const dev = this.work.device;
    return {
      session: this.args.name, pid: process.pid, device: this.devices[0]!.address, driving: dev.address,
      type: this.work.kind, phase: dev.state, mechanism: this.mechanism, layout: dev.layout,
      requests: { submitted: this.work.submitted, completed: this.work.completed, inFlight: this.traffic?.outstanding ?? 0 },
    };
  }

  private async handle(req: Request): Promise<unknown> {
    const a = req.args ?? {};
    switch (req.cmd) {
      case 'status':
        return this.status();
      case 'stop':
        this.mechanism = await this.work.stop({ mechanism: (a.mechanism as Mechanism | 'auto' | undefined) ?? 'auto', timeoutMs: Number(a.timeoutMs ?? 5000) });
        return this.status();
      case 'vq-state': {
        const dev = this.work.device;
        const snap = dev.snapshot();
        return { mechanism: snap.mechanism, layout: snap.layout, queues: snap.queues.map((q) => ({ index: q.index, size: q.size, availState: q.availState, usedState: q.usedState, inFlight: q.inFlight })) };
      }
      case 'snapshot': {
        const out = String(a.out ?? '');
        if (!isAbsolute(out)) throw new UsageError('E_INVALID_ARGUMENT', 'snapshot needs an absolute --out path');
        const snap = this.work.snapshot();
        writeSnapshotFile(out, snap);
        return { file: out, mechanism: snap.mechanism, queues: snap.queues.length, deviceState: snap.deviceState !== null };
      }
      case 'reinit': {
        const from = String(a.from ?? '');
        if (!isAbsolute(from)) throw new UsageError('E_INVALID_ARGUMENT', 'reinit needs an absolute --from path');
        const snap = readSnapshotFile(from);
        let target: OpenedDevice | undefined;
        if (typeof a.to === 'string') {
          target = this.devices.find((d) => d.address === a.to) ?? await openTransport(a.to, { shareWith: this.devices[0]! });
          if (!this.devices.includes(target)) this.devices.push(target);
        }
        await this.work.reinit(snap, target ? { target: target.transport } : {});
        this.mechanism = null;
        return this.status();
      }
      case 'resume':
        await this.work.device.resume();
        this.mechanism = null;
        return this.status();
      case 'detach': {
        this.traffic?.stop();
        let verdict: unknown = null;
        if (a.verify && this.work.device.state === 'live') {
          await this.traffic?.idle();
          verdict = await this.work.verify();
        }
        const result = { ...this.status(), verdict };
        setImmediate(() => void this.shutdown());
        return result;
      }
    }
    throw new UsageError('E_INVALID_ARGUMENT', `unknown session command "${String(req.cmd)}"`);
  }

  async shutdown(): Promise<void> {
    this.traffic?.stop();
    this.server?.close();
    rmSync(socketPath(this.dir, this.args.name), { force: true });
    unlockDevice(this.dir, this.devices[0]!.address);
    await this.work.close().catch(() => undefined);
    for (const d of this.devices) d.transport.close();
    process.exit(0);
  }
}

/** The one line `uvirtio attach` waits for, on fd 3. */
function tellParent(message: unknown): void {
  try {
    writeSync(3, JSON.stringify(message) + '\n');
    closeSync(3);
  } catch {
    console.log(JSON.stringify(message)); // started by hand, without the pipe
  }
}

async function main(): Promise<void> {
  let args: AgentArgs | undefined;
  let locked = false;
  const dir = runtimeDir();
  try {
    args = parseArgs(process.argv.slice(2));
    lockDevice(dir, args.device, args.name);
    locked = true;
    const source = await openTransport(args.device);
    const work = await openWorkload(source.transport.deviceType === 1 ? 'net' : 'blk', source, 'auto', seededRandom(1));
    const agent = new Agent(args, dir, source, work);
    await agent.listen();
    agent.startTraffic();
    process.on('SIGTERM', () => void agent.shutdown());
    process.on('SIGINT', () => void agent.shutdown());
    tellParent({ ready: true, pid: process.pid });
    console.log(`${new Date().toISOString()} session ${args.name}: holding ${args.device}`);
  } catch (e) {
    if (args && locked) unlockDevice(dir, args.device); // never another agent's lock
    const error = isUvirtioError(e) ? e.toJSON() : { code: 'E_INVALID_ARGUMENT', message: String((e as Error)?.message ?? e) };
    tellParent({ ready: false, error });
    process.exit(1);
  }
}

await main();

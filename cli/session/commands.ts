// Session commands: attach starts an agent that holds the device; the others talk to it.
//   uvirtio attach DEV [--name S] [--traffic N]   uvirtio stop [--mechanism M]   uvirtio vq-state
//   uvirtio snapshot --out FILE   uvirtio reinit --from FILE [--to DEV]   uvirtio resume
//   uvirtio status   uvirtio detach [--verify]      (each takes --session NAME and --json)
//
// Snapshot files are written and read here, by the command the user ran, not by the agent: the
// agent hands over the snapshot (and takes one) as data.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { parseAddress } from '../../lib/address.js';
import { UvirtioError, UsageError, type ErrorCode } from '../../lib/errors.js';
import { readSnapshotFile, writeSnapshotFile, type DeviceSnapshot } from '../../lib/virtio/snapshot/index.js';
import { EXIT, action } from '../exit.js';
import { MECHANISM_CHOICES, intArg, timeoutOf } from '../options.js';
import { BOUNDS, bounded } from '../wait.js';
import { checkName, checkSocketPath, listSessions, nameFor, otherNameHolder, releaseName, runtimeDir, unlockDevice } from './paths.js';
import { call, resolveSession, type Request } from './protocol.js';

const AGENT = fileURLToPath(new URL('./agent.js', import.meta.url));

type Result = Record<string, unknown>;
type Ready = { ready: true; pid: number } | { ready: false; error: { code: ErrorCode; message: string; hint?: string } };

/** How long the CLI waits for an agent's answer: its own bounds (at most a drain and a verification) and a margin. */
const agentBound = (timeoutMs: number): number => 2 * timeoutMs + BOUNDS.CLOSE_MS + BOUNDS.MARGIN_MS;

/** The agent's one line on fd 3: ready, or why not. */
function readyLine(child: ChildProcess, log: string): Promise<Ready> {
  return new Promise((done, fail) => {
    let buf = '';
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        done(JSON.parse(buf.slice(0, nl)) as Ready);
      } catch {
        fail(new UvirtioError('E_NO_SESSION', `the session agent said something that is not JSON (see ${log})`,
          `see ${log} for what the agent wrote; then attach again`));
      }
    });
    child.once('exit', (code, signal) => fail(new UvirtioError('E_NO_SESSION', `the session agent exited (${signal ?? `status ${code}`}) before it was ready`, `see ${log}`)));
  });
}

/** Ends an agent that did not become ready (attach failed or was interrupted): SIGTERM, then SIGKILL. */
async function stopAgent(child: ChildProcess, device: string, name: string): Promise<void> {
  const exited = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
  child.kill('SIGTERM');
  const gone = await bounded(exited, { what: 'the agent\'s exit', ms: BOUNDS.AGENT_EXIT_MS }, null).then(() => true, () => false);
  if (!gone) {
    child.kill('SIGKILL');
    await bounded(exited, { what: 'the killed agent\'s exit', ms: 300 }, null).catch(() => undefined);
  }
  // An agent that had no time to clean up leaves its locks (and maybe its socket): only its own —
  // never those of another agent serving the same name or device.
  const dir = runtimeDir();
  if (child.pid !== undefined) {
    unlockDevice(dir, device, child.pid);
    releaseName(dir, name, child.pid);
  }
}

/** Starts the agent detached (its own process group: a terminal's Ctrl-C is not for it) and waits, bounded, until it is ready. */
async function attach(device: string, o: { name?: string; traffic: number }, timeoutMs: number): Promise<{ session: string; pid: number; device: string }> {
  parseAddress(device);
  const name = checkName(o.name ?? nameFor(device));
  const dir = runtimeDir();
  checkSocketPath(dir, name); // before anything is created: the kernel would bind a truncated path
  if (listSessions(dir).includes(name)) {
    try {
      await call(name, { cmd: 'status' }, BOUNDS.STATUS_MS);
      throw new UsageError('E_SESSION_EXISTS', `session "${name}" is already attached`, `detach it first (uvirtio detach --session ${name}) or pick another --name`);
    } catch (e) {
      if (!(e instanceof UvirtioError) || e.code !== 'E_NO_SESSION') throw e; // a stale socket was cleaned up: go on
    }
  }
  const log = join(dir, `${name}.log`);
  const newLog = !existsSync(log);
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [AGENT, '--device', device, '--name', name, '--traffic', String(o.traffic), '--timeout', String(timeoutMs)], {
    detached: true, stdio: ['ignore', fd, fd, 'pipe'],
  });
  closeSync(fd);
  let ready: Ready;
  try {
    ready = await bounded(readyLine(child, log), { what: 'the session agent\'s start', ms: BOUNDS.AGENT_START_MS, hint: `see ${log}` });
  } catch (e) {
    await stopAgent(child, device, name);
    throw e;
  } finally {
    (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
    child.unref();
  }
  if (!ready.ready) {
    // The agent refused cleanly and its error says it all: a refused attach leaves nothing behind.
    await stopAgent(child, device, name);
    // The log is this attach's own unless another agent serves the name (and writes to it).
    if (newLog && !otherNameHolder(dir, name, child.pid)) rmSync(log, { force: true });
    throw new UvirtioError(ready.error.code, ready.error.message, ready.error.hint);
  }
  return { session: name, pid: ready.pid, device };
}

function print(human: string, data: unknown, json: boolean): void {
  console.log(json ? JSON.stringify(data) : human);
}

const phase = (r: Result): string => {
  const running = r.running as { cmd: string; forMs: number } | undefined;
  return `${String(r.session)}: ${String(r.driving)} ${String(r.phase)}${r.mechanism ? ` (${String(r.mechanism)})` : ''}` +
    (running ? `; "${running.cmd}" running for ${(running.forMs / 1000).toFixed(1)} s` : '');
};

export function registerSessionCommands(program: Command): void {
  const session = (cmd: Command): Command => cmd.option('--session <name>', 'the session (default: the only one)').option('--json', 'one JSON object on stdout');
  /** A request to the session; the answer printed. */
  const run = (request: (o: Result, timeoutMs: number) => Request | Promise<Request>, human: (r: Result, o: Result) => string | Promise<string>) =>
    action(async (o: Result, cmd: Command) => {
      const timeoutMs = timeoutOf(cmd);
      const name = resolveSession(o.session as string | undefined);
      const r = await call(name, await request(o, timeoutMs), agentBound(timeoutMs)) as Result;
      print(await human(r, o), r, Boolean(o.json));
    });

  program.command('attach')
    .description('start a session agent that holds DEV across invocations (a VFIO device resets when its last fd closes)')
    .argument('<device>', 'device address')
    .option('--name <name>', 'session name (default: from the address)')
    .option('--traffic <n>', 'keep N checked requests in flight in the background (0: none)', intArg('traffic', 0, 256), 0)
    .option('--json', 'one JSON object on stdout')
    .action(action(async (device: string, o: { name?: string; traffic: number; json?: boolean }, cmd: Command) => {
      const r = await attach(device, o, timeoutOf(cmd));
      print(`attached ${r.device} as session "${r.session}" (agent pid ${r.pid})`, r, Boolean(o.json));
    }));

  session(program.command('stop').description('stop the device (best mechanism, or --mechanism)'))
    .addOption(new Option('--mechanism <m>', 'how to stop and read state').choices(MECHANISM_CHOICES).default('auto'))
    .action(run((o, timeoutMs) => ({ cmd: 'stop', args: { mechanism: o.mechanism, timeoutMs } }), phase));

  session(program.command('vq-state').description('each virtqueue\'s available and used state (device stopped)'))
    .action(run(() => ({ cmd: 'vq-state' }), (r) => (r.queues as { index: number; availState: number; usedState: number; inFlight: number }[])
      .map((q) => `queue ${q.index}: avail ${q.availState}, used ${q.usedState}, ${q.inFlight} in flight`).join('\n')));

  session(program.command('snapshot').description('write the stopped device\'s state to FILE (atomically: the file is complete or absent)'))
    .requiredOption('--out <file>', 'snapshot file (a new file, or an earlier snapshot to replace)')
    .action(run(() => ({ cmd: 'snapshot' }), (r, o) => {
      const file = resolve(String(o.out));
      writeSnapshotFile(file, r.snapshot as DeviceSnapshot);
      delete r.snapshot;
      r.file = file;
      return `wrote ${file} (${String(r.mechanism)})`;
    }));

  session(program.command('reinit').description('bring the device (or --to DEV) back up from a snapshot file'))
    .requiredOption('--from <file>', 'snapshot file')
    .option('--to <device>', 'another device of the same type')
    .action(run((o, timeoutMs) => {
      // Read and validated here, before the agent hears of it: a bad file changes nothing.
      const snapshot = readSnapshotFile(resolve(String(o.from)));
      if (o.to !== undefined) parseAddress(String(o.to));
      return { cmd: 'reinit', args: { snapshot, ...(o.to !== undefined ? { to: o.to } : {}), timeoutMs } };
    }, phase));

  session(program.command('resume').description('leave a SUSPEND or quiesce stop without a reset'))
    .action(run((_o, timeoutMs) => ({ cmd: 'resume', args: { timeoutMs } }), phase));

  session(program.command('detach').description('reset the device, release it, end the session'))
    .option('--verify', 'first drain the background traffic (bounded) and check every request was done exactly once')
    .action(action(async (o: Result, cmd: Command) => {
      const timeoutMs = timeoutOf(cmd);
      const json = Boolean(o.json);
      const r = await call(resolveSession(o.session as string | undefined), { cmd: 'detach', args: { verify: Boolean(o.verify), timeoutMs } }, agentBound(timeoutMs)) as Result;
      const v = r.verdict as { lost: number; duplicated: number; corrupted: number } | null;
      print(`detached ${String(r.session)}${v ? `: ${v.lost} lost, ${v.duplicated} duplicated, ${v.corrupted} corrupted` : ''}`, r, json);
      return v && (v.lost || v.duplicated || v.corrupted) ? EXIT.VERDICT : EXIT.OK;
    }));

  program.command('status')
    .description('the sessions and their devices')
    .option('--session <name>', 'only this session')
    .option('--json', 'JSON on stdout (an array without --session)')
    .action(action(async (o: { session?: string; json?: boolean }) => {
      const json = Boolean(o.json);
      if (o.session !== undefined) {
        const r = await call(checkName(o.session), { cmd: 'status' }, BOUNDS.STATUS_MS) as Result;
        print(phase(r), r, json);
        return;
      }
      const all: Result[] = [];
      for (const name of listSessions(runtimeDir())) {
        try {
          all.push(await call(name, { cmd: 'status' }, BOUNDS.STATUS_MS) as Result);
        } catch (e) {
          if (!(e instanceof UvirtioError)) throw e;
          if (e.code === 'E_NO_SESSION') continue; // a stale socket, removed by call()
          if (e.code !== 'E_REQUEST_TIMEOUT') throw e; // E_INTERRUPTED among others
          all.push({ session: name, error: e.toJSON() });
        }
      }
      print(all.length ? all.map((r) => (r.error ? `${String(r.session)}: not answering` : phase(r))).join('\n') : 'no sessions', all, json);
    }));
}

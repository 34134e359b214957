// Session commands: attach starts an agent that holds the device; the others talk to it.
//   uvirtio attach DEV [--name S] [--traffic N]   uvirtio stop [--mechanism M]   uvirtio vq-state
//   uvirtio snapshot --out FILE   uvirtio reinit --from FILE [--to DEV]   uvirtio resume
//   uvirtio status   uvirtio detach [--verify]      (each takes --session NAME and --json)

import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { parseAddress } from '../../lib/address.js';
import { UvirtioError, UsageError } from '../../lib/virtio/errors.js';
import { checkName, listSessions, nameFor, runtimeDir, socketPath } from './paths.js';
import { call, resolveSession, type Request } from './protocol.js';

type Print = (human: string, data: unknown, json: boolean) => void;
type Fail = (e: unknown, json: boolean) => never;

const AGENT = fileURLToPath(new URL('./agent.js', import.meta.url));

/** Starts the agent detached and waits (bounded) for its ready line on fd 3. */
async function attach(device: string, o: { name?: string; traffic: number }): Promise<{ session: string; pid: number; device: string }> {
  parseAddress(device);
  const name = checkName(o.name ?? nameFor(device));
  const dir = runtimeDir();
  if (existsSync(socketPath(dir, name))) {
    try {
      await call(name, { cmd: 'status' }, 5000);
      throw new UsageError('E_SESSION_EXISTS', `session "${name}" is already attached`, `detach it first (uvirtio detach --session ${name}) or pick another --name`);
    } catch (e) {
      if (!(e instanceof UvirtioError) || e.code !== 'E_NO_SESSION') throw e; // a stale socket was cleaned up: go on
    }
  }
  const log = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn(process.execPath, [AGENT, '--device', device, '--name', name, '--traffic', String(o.traffic)], {
    detached: true, stdio: ['ignore', log, log, 'pipe'],
  });
  closeSync(log);
  const ready = await new Promise<{ ready: boolean; pid?: number; error?: { code: string; message: string; hint?: string } }>((done, fail) => {
    let buf = '';
    const timer = setTimeout(() => fail(new UvirtioError('E_REQUEST_TIMEOUT', `the session agent did not start within 20 s (see ${join(dir, `${name}.log`)})`)), 20_000);
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        clearTimeout(timer);
        done(JSON.parse(buf.slice(0, buf.indexOf('\n'))) as { ready: boolean });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!buf.includes('\n')) fail(new UvirtioError('E_NO_SESSION', `the session agent exited (status ${code}) before it was ready (see ${join(dir, `${name}.log`)})`));
    });
  });
  (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
  child.unref();
  if (!ready.ready) {
    const e = ready.error!;
    throw new UvirtioError(e.code as UvirtioError['code'], e.message, e.hint);
  }
  return { session: name, pid: ready.pid!, device };
}

export function registerSessionCommands(program: Command, print: Print, fail: Fail): void {
  const session = (cmd: Command): Command => cmd.option('--session <name>', 'the session (default: the only one)').option('--json', 'one JSON object on stdout');
  const run = (request: (o: Record<string, unknown>) => Request, human: (r: Record<string, unknown>) => string) =>
    async (o: Record<string, unknown>): Promise<void> => {
      const json = Boolean(o.json);
      try {
        const result = await call(resolveSession(o.session as string | undefined), request(o)) as Record<string, unknown>;
        print(human(result), result, json);
      } catch (e) {
        fail(e, json);
      }
    };
  const phase = (r: Record<string, unknown>): string =>
    `${String(r.session)}: ${String(r.driving)} ${String(r.phase)}${r.mechanism ? ` (${String(r.mechanism)})` : ''}`;

  program.command('attach')
    .description('start a session agent that holds DEV across invocations (a VFIO device resets when its last fd closes)')
    .argument('<device>', 'device address')
    .option('--name <name>', 'session name (default: from the address)')
    .option('--traffic <n>', 'keep N checked requests in flight in the background (0: none)', (v) => Number(v), 0)
    .option('--json', 'one JSON object on stdout')
    .action(async (device: string, o: { name?: string; traffic: number; json?: boolean }) => {
      try {
        if (!Number.isInteger(o.traffic) || o.traffic < 0 || o.traffic > 256) throw new UsageError('E_INVALID_ARGUMENT', '--traffic must be 0 to 256');
        const r = await attach(device, o);
        print(`attached ${r.device} as session "${r.session}" (agent pid ${r.pid})`, r, Boolean(o.json));
      } catch (e) {
        fail(e, Boolean(o.json));
      }
    });

  session(program.command('stop').description('stop the device (best mechanism, or --mechanism)'))
    .addOption(new Option('--mechanism <m>').choices(['auto', 'ring-state', 'suspend', 'backend', 'quiesce']).default('auto'))
    .action(run((o) => ({ cmd: 'stop', args: { mechanism: o.mechanism } }), phase));

  session(program.command('vq-state').description('each virtqueue\'s available and used state (device stopped)'))
    .action(run(() => ({ cmd: 'vq-state' }), (r) => (r.queues as { index: number; availState: number; usedState: number; inFlight: number }[])
      .map((q) => `queue ${q.index}: avail ${q.availState}, used ${q.usedState}, ${q.inFlight} in flight`).join('\n')));

  session(program.command('snapshot').description('write the stopped device\'s state to FILE (atomically)'))
    .requiredOption('--out <file>', 'snapshot file')
    .action(run((o) => ({ cmd: 'snapshot', args: { out: resolve(String(o.out)) } }), (r) => `wrote ${String(r.file)} (${String(r.mechanism)})`));

  session(program.command('reinit').description('bring the device (or --to DEV) back up from a snapshot file'))
    .requiredOption('--from <file>', 'snapshot file')
    .option('--to <device>', 'another device of the same type')
    .action(run((o) => ({ cmd: 'reinit', args: { from: resolve(String(o.from)), ...(o.to ? { to: o.to } : {}) } }), phase));

  session(program.command('resume').description('leave a SUSPEND or quiesce stop without a reset'))
    .action(run(() => ({ cmd: 'resume' }), phase));

  session(program.command('detach').description('reset the device, release it, end the session'))
    .option('--verify', 'first drain the background traffic and check every request was done exactly once')
    .action(async (o: Record<string, unknown>) => {
      const json = Boolean(o.json);
      try {
        const r = await call(resolveSession(o.session as string | undefined), { cmd: 'detach', args: { verify: Boolean(o.verify) } }) as Record<string, unknown>;
        const v = r.verdict as { lost: number; duplicated: number; corrupted: number } | null;
        print(`detached ${String(r.session)}${v ? `: ${v.lost} lost, ${v.duplicated} duplicated, ${v.corrupted} corrupted` : ''}`, r, json);
        if (v && (v.lost || v.duplicated || v.corrupted)) process.exitCode = 1;
      } catch (e) {
        fail(e, json);
      }
    });

  program.command('status')
    .description('the sessions and their devices')
    .option('--session <name>', 'only this session')
    .option('--json', 'JSON on stdout (an array without --session)')
    .action(async (o: { session?: string; json?: boolean }) => {
      const json = Boolean(o.json);
      try {
        if (o.session) {
          const r = await call(o.session, { cmd: 'status' }) as Record<string, unknown>;
          print(phase(r), r, json);
          return;
        }
        const all = [];
        for (const name of listSessions(runtimeDir())) {
          try {
            all.push(await call(name, { cmd: 'status' }, 5000) as Record<string, unknown>);
          } catch {
            // a stale socket was removed by call()
          }
        }
        print(all.length ? all.map(phase).join('\n') : 'no sessions', all, json);
      } catch (e) {
        fail(e, json);
      }
    });
}

// The session agent: a background process that holds one device across separate `uvirtio`
// invocations (a VFIO device is reset when its last file descriptor closes, so something must
// hold it). It drives the device with a driver for its type, optionally keeps checked traffic
// running, and answers the CLI's requests on a UNIX socket (protocol.ts).
//
//   node dist/cli/session/agent.js --device DEV --name NAME [--traffic N] [--timeout MS]
// writes one line to file descriptor 3 — {"ready":true,"pid":…} or {"ready":false,"error":{…}} —
// and closes it; `uvirtio attach` waits for that line. Its stdout and stderr go to NAME.log beside
// the socket.
//
// Requests run one at a time, in order (`status` is answered at once, and names the request
// running): a stop and a reinit never interleave. A request whose client went away before its turn
// (the command was interrupted) is skipped; one already begun runs to its own end. At
// SIGINT/SIGTERM, and at `detach`, the agent ends the session within the teardown deadline: no new
// connection, the requests still waiting answered, the device closed (reset), then its socket and
// locks removed — a detach answers after all of that.

import { createServer, type Server, type Socket } from 'node:net';
import { closeSync, rmSync, writeSync } from 'node:fs';
import { Command } from 'commander';
import { formatAddress, parseAddress } from '../../lib/address.js';
import { openTransport, type OpenedDevice } from '../../lib/open.js';
import { UvirtioError, UsageError, isUvirtioError } from '../../lib/errors.js';
import type { DeviceSnapshot, Mechanism } from '../../lib/virtio/snapshot/index.js';
import { openWorkload } from '../rehearsal/engine.js';
import { seededRandom } from '../rehearsal/random.js';
import { Traffic } from '../rehearsal/traffic.js';
import { workloadKindFor, type Workload } from '../rehearsal/workload.js';
import { EXIT, exitCodeFor, exitCodeForCode } from '../exit.js';
import { intArg } from '../options.js';
import { installSignalHandlers, onInterrupt, signalStatus, throwIfInterrupted } from '../signals.js';
import { BOUNDS, bounded, boundedAcquire, closeWhenSettled, releaseWhenDone } from '../wait.js';
import { checkName, checkSocketPath, lockDevice, lockName, releaseName, runtimeDir, socketPath, unlockDevice } from './paths.js';
import { FirstLine, type Request, type Response } from './protocol.js';
import { rendered, thrownMessage } from '../../lib/util/shown.js';

interface AgentArgs {
  device: string;
  name: string;
  traffic: number;
  timeout: number;
}

function parseArgs(argv: string[]): AgentArgs {
  const cmd = new Command('uvirtio-agent')
    .requiredOption('--device <dev>')
    .requiredOption('--name <name>')
    .option('--traffic <n>', 'requests kept in flight', intArg('traffic', 0, 256), 0)
    .option('--timeout <ms>', 'bound on each wait for the device', intArg('timeout', 1, 600_000), BOUNDS.DEVICE_MS)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    throw new UsageError('E_INVALID_ARGUMENT', `session agent: ${(e as Error).message.replace(/^error: /, '')}`);
  }
  const o = cmd.opts<AgentArgs>();
  return { device: o.device, name: checkName(o.name), traffic: o.traffic, timeout: o.timeout };
}

function log(text: string): void {
  console.log(`${new Date().toISOString()} ${text}`);
}

class Agent {
  private readonly devices: OpenedDevice[];
  private traffic: Traffic | null = null;
  private server: Server | null = null;
  /** The request running now and those waiting: one at a time. */
  private queue: Promise<void> = Promise.resolve();
  /** The device step running now, if any: the device is not closed under it. */
  private running: Promise<unknown> | null = null;
  /** The request running now (what `status` shows while it runs), since when (performance.now()), and its client's answer. */
  private current: { cmd: string; since: number; reply: (res: Response) => Promise<void>; cut: boolean } | null = null;
  /** The end of the session once it began (detach or signal): run once, whoever asks again waits for it. */
  private releasing: Promise<void> | null = null;
  /** Why the session ended (for the answers), and whether its device was closed before the exit. */
  private endedBy: { status: number; closed: boolean } | null = null;
  /** Set once the requests waiting at the end were answered: any later one is answered at once. */
  private answered = false;
  /** The connections open now (each carries one request, then its answer). */
  private readonly connections = new Set<Socket>();
  /** Requests waiting for their turn, answered at once if the session ends first. */
  private readonly waiting = new Set<{ req: Request; reply: (res: Response) => Promise<void> }>();
  /** A detach --verify's answer that ended the session: the detaches waiting behind it get it too. */
  private ended: Response | null = null;
  /** The devices whose locks this agent holds: the attached one, and targets of reinit --to. */
  private locked: string[];

  constructor(private readonly args: AgentArgs, private readonly dir: string, source: OpenedDevice, private readonly work: Workload) {
    this.devices = [source];
    this.locked = [args.device];
  }

  /** Whatever sits at the socket path is stale: this agent holds the session name's lock. */
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
    let first: FirstLine | null = new FirstLine(); // null once the request came: one per connection
    let gone = false;
    this.connections.add(sock);
    sock.on('end', () => (gone = true));
    sock.on('close', () => {
      gone = true;
      this.connections.delete(sock);
    });
    sock.on('error', () => undefined);
    sock.on('data', (d) => {
      if (first === null) return;
      const line = first.push(d);
      if (line === 'too-long') {
        sock.destroy();
        return;
      }
      if (line === null) return;
      first = null;
      const reply = (res: Response): Promise<void> => new Promise((done) => {
        if (sock.destroyed) done();
        else sock.end(JSON.stringify(res) + '\n', () => done());
      });
      let req: Request;
      try {
        req = JSON.parse(line) as Request;
        if (typeof req !== 'object' || req === null || typeof req.cmd !== 'string') throw new Error('not a request');
      } catch {
        void reply({ ok: false, error: { code: 'E_INVALID_ARGUMENT', message: 'the request is not a JSON object with a "cmd"' } });
        return;
      }
      if (req.cmd === 'status') {
        void reply({ ok: true, result: this.status(true) });
        return;
      }
      log(`${req.cmd}: received`);
      const waiter = { req, reply };
      this.waiting.add(waiter);
      if (this.answered) {
        // The session has ended and the waiting were answered: this one too, at once.
        this.answerWaiting();
        return;
      }
      if (this.releasing) return; // the session is ending: answered when it has ended
      this.queue = this.queue.then(async () => {
        // Left waiting while the session ends (answered at its end); gone if answered already.
        if (this.releasing || !this.waiting.has(waiter)) return;
        this.waiting.delete(waiter);
        if (gone) {
          log(`${req.cmd}: skipped (its client went away before its turn)`);
          return;
        }
        const answer = this.answer(req);
        this.running = answer;
        const current = { cmd: req.cmd, since: performance.now(), reply, cut: false };
        this.current = current;
        const res = await answer;
        this.running = null;
        this.current = null;
        if (current.cut) return; // the session ended under it (a signal) and answered its client
        log(`${req.cmd}: ${res.ok ? 'ok' : `${res.error.code}: ${res.error.message}`}`);
        // A detach that ends the session answers only once the session is gone — socket, locks,
        // device closed (reset) — so that a script's next command (attach the same device, or
        // look at the runtime directory) never finds it half there.
        const ends = req.cmd === 'detach' && (res.ok || res.error.code !== 'E_BAD_STATE');
        if (ends) {
          this.ended = res;
          await this.release(0);
        }
        await bounded(reply(res), { what: 'sending the answer', ms: 1000 }, null).catch(() => undefined);
        if (ends) {
          await this.connectionsAnswered();
          process.exit(0);
        }
      });
    });
  }

  private async answer(req: Request): Promise<Response> {
    try {
      return { ok: true, result: await this.handle(req) };
    } catch (e) {
      const shown = isUvirtioError(e) && e.code === 'E_BAD_STATE' ? this.failedDevice(`cannot ${req.cmd}`) ?? e : e;
      const error = isUvirtioError(shown) ? shown.toJSON() : internalError(shown);
      return { ok: false, error };
    }
  }

  /**
   * The session as `status` shows it. While a request runs (`withRunning`: the status command, not
   * a request's own answer), `running` names it and `phase` is its progressive form: a stop the
   * agent is still carrying out — its client interrupted or not — is "stopping", never "live".
   */
  private status(withRunning = false): Record<string, unknown> {
    const d = this.work.driving();
    const errors = this.traffic?.errors ?? [];
    const running = withRunning ? this.current : null;
    const shown = withRunning && this.releasing ? 'ending' : running ? RUNNING_PHASE[running.cmd] ?? d.phase : d.phase;
    return {
      session: this.args.name, pid: process.pid, device: this.devices[0]!.address, driving: d.address,
      type: this.work.kind, phase: shown, mechanism: d.mechanism, layout: d.layout,
      ...(running ? { running: { cmd: running.cmd, forMs: Math.round(performance.now() - running.since) } } : {}),
      requests: { submitted: this.work.submitted, completed: this.work.completed, inFlight: this.traffic?.outstanding ?? 0 },
      ...(errors.length > 0 ? { trafficError: isUvirtioError(errors[0]) ? errors[0].toJSON() : String(errors[0]) } : {}),
    };
  }

  /** A request's own bound: the SDK bounds the step itself; this one, a margin longer, is the backstop. */
  private step<T>(p: Promise<T>, what: string, timeoutMs: number): Promise<T> {
    return bounded(p, { what, ms: timeoutMs + BOUNDS.MARGIN_MS }, null);
  }

  private async handle(req: Request): Promise<unknown> {
    const a = req.args ?? {};
    const timeoutMs = typeof a.timeoutMs === 'number' && a.timeoutMs > 0 ? a.timeoutMs : this.args.timeout;
    switch (req.cmd) {
      case 'stop': {
        const mechanism = (a.mechanism as Mechanism | 'auto' | undefined) ?? 'auto';
        await this.step(this.work.stop({ mechanism, timeoutMs }), `the stop of ${this.work.driving().address}`, timeoutMs);
        return this.status();
      }
      case 'vq-state': {
        const snap = this.work.snapshot();
        return { mechanism: snap.mechanism, layout: snap.layout, queues: snap.queues.map((q) => ({ index: q.index, size: q.size, availState: q.availState, usedState: q.usedState, inFlight: q.inFlight })) };
      }
      case 'snapshot': {
        const snap = this.work.snapshot();
        return { snapshot: snap, mechanism: snap.mechanism, queues: snap.queues.length, deviceState: snap.deviceState !== null };
      }
      case 'reinit':
        return this.reinit(a.snapshot as DeviceSnapshot, typeof a.to === 'string' ? a.to : undefined, timeoutMs);
      case 'resume':
        // Through the driver: it resumes the device AND its request queues (the device alone left them paused).
        await this.step(this.work.resume(), `the resume of ${this.work.driving().address}`, timeoutMs);
        return this.status();
      case 'detach':
        return this.detach(Boolean(a.verify), timeoutMs);
    }
    throw new UsageError('E_INVALID_ARGUMENT', `unknown session command ${rendered(req.cmd)}`);
  }

  /**
   * The snapshot is validated in full by the SDK before it touches a device. A target opened for a
   * reinit that failed is closed again — once the reinit has settled (never under it), and an open
   * abandoned at its bound once it completes: a refused reinit leaves nothing open on its target.
   */
  private async reinit(snap: DeviceSnapshot, to: string | undefined, timeoutMs: number): Promise<unknown> {
    let target: OpenedDevice | undefined;
    let opened = false;
    if (to !== undefined) {
      const address = formatAddress(parseAddress(to));
      target = this.devices.find((d) => d.address === address);
      if (!target) {
        // The target is this session's device from now on: its lock first (another session's
        // device is refused E_SESSION_EXISTS before anything is opened), released with the session
        // or when the target is closed again.
        if (!this.locked.includes(to)) {
          lockDevice(this.dir, to, this.args.name);
          this.locked.push(to);
        }
        try {
          target = await boundedAcquire(openTransport(to, { shareWith: this.devices[0]!, timeoutMs }), { what: `opening ${to}`, ms: timeoutMs + BOUNDS.MARGIN_MS },
            (late) => late.transport.close());
        } catch (e) {
          this.unlock(to);
          throw e;
        }
        opened = true;
      }
    }
    const attempt = this.work.reinit(snap, target ? { target: target.transport } : {});
    try {
      await this.step(attempt, `the reinit of ${target?.address ?? this.work.driving().address}`, timeoutMs);
    } catch (e) {
      // Kept if the driver ended up on it (a reinit that completed past its bound), else closed.
      if (opened) releaseWhenDone(attempt.then(() => target!, () => target!), (t) => this.keepOrClose(t));
      throw e;
    }
    if (opened) this.devices.push(target!);
    return this.status();
  }

  private keepOrClose(target: OpenedDevice): void {
    if (this.work.driving().address === target.address) {
      this.devices.push(target);
      return;
    }
    target.transport.close();
    this.unlock(this.locked.find((a) => a !== this.args.device && formatAddress(parseAddress(a)) === target.address));
  }

  /** Releases the lock of a device this session took with reinit --to (never the attached one's before the end). */
  private unlock(device: string | undefined): void {
    if (device === undefined || device === this.args.device) return;
    unlockDevice(this.dir, device, process.pid);
    this.locked = this.locked.filter((a) => a !== device);
  }

  /**
   * A device that failed (needs-reset, failed) refuses stop, resume, reinit (E_BAD_STATE): that is
   * the device's failure, not the caller's mistake — reported as it (exit 3), with what to do.
   */
  private failedDevice(what: string): UvirtioError | null {
    const d = this.work.driving();
    if (d.phase !== 'needs-reset' && d.phase !== 'failed') return null;
    const failure = this.work.failure();
    const code = failure && exitCodeForCode(failure.code) === EXIT.DEVICE ? failure.code : 'E_DEVICE_NEEDS_RESET';
    return new UvirtioError(code, `${what}: ${d.address} failed${failure ? ` (${failure.code}: ${failure.message})` : ''} and needs a reset`,
      '`uvirtio detach` resets and releases it; check the device (or its back-end), then attach it again');
  }

  /** With verify: the device must be live; the traffic drains (bounded by progress) and is checked. Then the session ends. */
  private async detach(verify: boolean, timeoutMs: number): Promise<unknown> {
    const d = this.work.driving();
    const failed = verify ? this.failedDevice('cannot verify') : null;
    if (failed) {
      // The requests in flight were rejected with the failure: no verdict. The session ends (the device reset).
      this.traffic?.stop();
      throw new UvirtioError(failed.code, `${failed.message}; its requests in flight were rejected, so there is no verdict; the session was ended (the device reset)`,
        'check the device (or its back-end), then attach it again');
    }
    if (verify && d.phase !== 'live') {
      throw new UsageError('E_BAD_STATE', `cannot verify: ${d.address} is ${d.phase}, so the requests in flight cannot complete; the session stays`,
        'resume it (uvirtio resume) or reinit it (uvirtio reinit --from FILE) first, or detach without --verify');
    }
    this.traffic?.stop();
    if (!verify) return { ...this.status(), verdict: null };
    try {
      await this.traffic?.idle({ stallMs: timeoutMs, signal: null });
      const verdict = await bounded(this.work.verify(), { what: 'the verification reads', ms: timeoutMs }, null);
      return { ...this.status(), verdict };
    } catch (e) {
      if (!(e instanceof UvirtioError)) throw e;
      throw new UvirtioError(e.code, `${e.message}; no verdict, and the session was ended (the device reset)`, e.hint);
    }
  }

  /**
   * Ends the session (see {@link Agent.release}) and exits with `status`. A session already ending
   * (a detach) is left to finish: the detach answers and exits (the signal's deadline bounds it).
   */
  async shutdown(status: number): Promise<void> {
    if (this.releasing) return;
    await this.release(status);
    await this.connectionsAnswered();
    process.exit(status);
  }

  /**
   * Before the exit: every connection the agent took is answered and closed (a request read after
   * the end is answered at once), so no client gets a reset — bounded by ANSWERS_MS.
   */
  private async connectionsAnswered(): Promise<void> {
    const end = performance.now() + ANSWERS_MS;
    do await new Promise((r) => setTimeout(r, 5));
    while (this.connections.size > 0 && performance.now() < end);
  }

  /**
   * Ends the session without exiting, once (a second call waits for the first): the traffic stops;
   * the devices are closed (reset) once the step running settles (bounded by SETTLE_MS, then
   * CLOSE_MS); only then do the socket, the name lock and the device locks go — until then `status`
   * answers, with phase "ending", and the lock keeps the device from a second session. A step still
   * running keeps the device, and so its locks and socket, until the exit (a flock ends with its
   * holder; what is left is stale and taken over). Then every request still waiting is answered.
   */
  private release(status: number): Promise<void> {
    this.releasing ??= this.endSession(status);
    return this.releasing;
  }

  private async endSession(status: number): Promise<void> {
    this.traffic?.stop();
    const closed = await closeWhenSettled(this.running, async () => {
      await this.work.close().catch(() => undefined);
      for (const d of this.devices) d.transport.close();
    }, BOUNDS.SETTLE_MS);
    this.endedBy = { status, closed };
    if (closed) {
      // The socket path goes (no new client finds it), but the listening socket stays open until
      // the exit: clients that connected just before are still accepted and answered, not reset.
      // (Never server.close(): libuv would unlink the path then, maybe a new agent's by that time.)
      releaseName(this.dir, this.args.name, process.pid);
      for (const device of this.locked) unlockDevice(this.dir, device, process.pid);
      log(`session ${this.args.name}: ended (status ${status})`);
    } else {
      log(`session ${this.args.name}: ended (status ${status}); a step was still running: the device, its lock and the socket are released by the exit`);
      const current = this.current;
      if (current) {
        // Its client gets an answer, not a closed connection: the outcome is not known.
        current.cut = true;
        log(`${current.cmd}: cut short by the end of the session`);
        void current.reply({ ok: false, error: { code: 'E_NO_SESSION', message: `session "${this.args.name}" ${endedHow(status)} while "${current.cmd}" was still running; its outcome is unknown and the device is reset as the agent exits`, hint: 'check the device, then attach it again (uvirtio attach DEV)' } });
      }
    }
    this.answered = true;
    this.answerWaiting();
  }

  /**
   * Answers the requests still waiting now that the session has ended: a detach as detached — the
   * session is gone, as it asked, with the verdict of the detach --verify that ended it if one did
   * (a waiting --verify without one is not answered detached) —, anything else E_NO_SESSION.
   */
  private answerWaiting(): void {
    const { status, closed } = this.endedBy!;
    const how = endedHow(status);
    const verified = this.ended?.ok === true && (this.ended.result as { verdict?: unknown }).verdict != null;
    for (const { req, reply } of this.waiting) {
      const detached = closed && req.cmd === 'detach' && (verified || !req.args?.verify);
      log(`${req.cmd}: ${detached ? `answered: the session ${how} (what it asked)` : 'not run: the session ended first'}`);
      void reply(detached
        ? this.ended?.ok ? this.ended : { ok: true, result: { session: this.args.name, pid: process.pid, verdict: null, endedBy: how } }
        : {
          ok: false,
          error: {
            code: 'E_NO_SESSION',
            message: `session "${this.args.name}" ${how} before "${req.cmd}" had its turn; it was not run${closed ? '' : ' (its device is released as the agent exits)'}`,
            hint: 'attach the device again (uvirtio attach DEV)',
          },
        });
    }
    this.waiting.clear();
  }
}

/**
 * What the agent answers for something thrown that is not a UvirtioError: a bug of ours, never the
 * caller's input (it was E_INVALID_ARGUMENT, exit 2, blaming the user).
 */
function internalError(thrown: unknown): { code: 'E_INTERNAL'; message: string; hint: string } {
  return { code: 'E_INTERNAL', message: `session agent: ${thrownMessage(thrown)}`, hint: "this is a bug in uvirtio: the session's log beside its socket has the details; please report it" };
}

/** How long an ending agent waits for its open connections to be answered and closed, ms (within the signal's 1500 ms deadline). */
const ANSWERS_MS = 500;

/** How the session ended, for an answer: "was detached", "was ended by SIGTERM". */
function endedHow(status: number): string {
  return status === 0 ? 'was detached' : `was ended by ${status === EXIT.SIGTERM ? 'SIGTERM' : 'SIGINT'}`;
}

/** `phase` in `status` while a request runs: what the device is going through. */
const RUNNING_PHASE: Record<string, string> = { stop: 'stopping', reinit: 'reinitialising', resume: 'resuming', detach: 'detaching' };

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
  installSignalHandlers();
  let args: AgentArgs | undefined;
  let source: OpenedDevice | undefined;
  let dir: string | undefined;
  try {
    args = parseArgs(process.argv.slice(2));
    dir = runtimeDir();
    checkSocketPath(dir, args.name);
    lockName(dir, args.name);
    lockDevice(dir, args.device, args.name);
    // The open's own waits end within --timeout with the device's error; this bound is the backstop.
    source = await boundedAcquire(openTransport(args.device, { timeoutMs: args.timeout }), { what: `opening ${args.device}`, ms: args.timeout + BOUNDS.MARGIN_MS },
      (late) => late.transport.close());
    const kind = workloadKindFor(source.transport.deviceType, source.address);
    const work = await boundedAcquire(openWorkload(kind, source, 'auto', seededRandom(1)), { what: `setting up the ${kind} driver on ${source.address}`, ms: args.timeout },
      (late) => late.close());
    const agent = new Agent(args, dir, source, work);
    onInterrupt(() => agent.shutdown(signalStatus()!));
    throwIfInterrupted();
    await bounded(agent.listen(), { what: 'listening on the session socket', ms: BOUNDS.STATUS_MS });
    agent.startTraffic();
    tellParent({ ready: true, pid: process.pid });
    log(`session ${args.name}: holding ${args.device}`);
  } catch (e) {
    if (args && dir) {
      unlockDevice(dir, args.device, process.pid);
      releaseName(dir, args.name, process.pid);
    }
    source?.transport.close();
    const error = isUvirtioError(e) ? e.toJSON() : internalError(e);
    log(`session start failed: ${error.code}: ${error.message}`);
    tellParent({ ready: false, error });
    process.exit(exitCodeFor(e));
  }
}

await main();

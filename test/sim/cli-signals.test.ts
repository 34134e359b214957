// SIGINT and SIGTERM end every `uvirtio` command within 2 s, with status 130 / 143, whatever it is
// waiting for: a device that never completes (rehearse), a session agent that never answers (the
// session commands), an agent that never gets ready because its back-end is silent (attach), a
// stop the agent is stuck in, or the process's own start (list, bind, unbind, info, status).
// The time from each signal to the exit is measured and printed (min / median / max).
import t, { type Test } from 'tap';
import { createServer, type Server, type Socket } from 'node:net';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { writeSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { randomInt, seededRandom } from '../../cli/rehearsal/random.js';
import { Background, sleep, summary, until, uvSync } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(300_000);
const seed = Number(process.env.UVIRTIO_SIGNAL_SEED ?? 1);
const rng = seededRandom(seed);
t.comment(`seed ${seed} (UVIRTIO_SIGNAL_SEED)`);
const runtime = tempDir('uvirtio-signals-rt-');
const work = tempDir('uvirtio-signals-');
const env = { UVIRTIO_RUNTIME_DIR: runtime };
const BOUND_MS = 2000;
const SIGNALS = ['SIGINT', 'SIGINT', 'SIGINT', 'SIGTERM', 'SIGTERM'] as const;
const STATUS = { SIGINT: 130, SIGTERM: 143 };
const timings: Record<string, number[]> = {};

/** A UNIX socket that accepts and never answers: a hung session agent, or a silent vhost-user back-end. */
async function silentServer(path: string): Promise<{ server: Server; connections: Socket[] }> {
  const connections: Socket[] = [];
  const server = createServer((s) => {
    connections.push(s);
    s.on('error', () => undefined);
    s.resume(); // read and drop: its end is seen when the peer goes
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, connections };
}

/**
 * Runs `args` SIGNALS.length times; each time waits for `ready` (the command is then waiting),
 * sends the signal after a seeded 0–`jitterMs`, and checks status and bound.
 */
async function measure(t: Test, label: string, args: string[], ready: (b: Background) => Promise<boolean>, jitterMs: number,
  line = true, signals: readonly ('SIGINT' | 'SIGTERM')[] = SIGNALS): Promise<void> {
  for (const signal of signals) {
    const b = new Background(env, work, args);
    t.ok(await ready(b), `${label}: the command is waiting`);
    await sleep(randomInt(rng, 0, jitterMs));
    const out = await b.signal(signal);
    t.ok(out.sent, `${label}: ${signal} reached it while it ran`);
    t.equal(out.status, STATUS[signal], `${label}: ${signal} → ${STATUS[signal]} (${out.stderr.trim()})`);
    t.ok(out.ms <= BOUND_MS, `${label}: ended ${Math.round(out.ms)} ms after ${signal} (bound ${BOUND_MS})`);
    // A signal that lands before the handlers exist (the first ~50 ms of node) kills silently: that is status 130/143 too.
    if (line) t.match(out.stderr, new RegExp(`^uvirtio: E_INTERRUPTED: interrupted by ${signal}(; meanwhile E_[A-Z_]+: .+)? \\(hint: .+\\)\n$`), `${label}: one E_INTERRUPTED line`);
    (timings[label] ??= []).push(out.ms);
  }
}

const started = (b: Background): Promise<boolean> => Promise.resolve(b.running);

t.test('while it starts: list, bind, unbind, info, status', async (t) => {
  for (const args of [['list'], ['bind', '0000:00:1f.7'], ['unbind', '0000:00:1f.7'], ['info', 'sim:blk'], ['status']]) {
    await measure(t, args[0]!, args, started, 60, false);
  }
});

t.test('rehearse on a device that never completes a request', async (t) => {
  await measure(t, 'rehearse (device stalled)', ['rehearse', '--device', 'sim:blk?completion=manual', '--cycles', '3'], async (b) => {
    // Its first line says the driver is set up (a loaded machine can take longer than any fixed delay); then it stalls.
    const started = await until(() => b.stdout.includes('rehearsing blk traffic'), 20_000);
    await sleep(300);
    return started && b.running;
  }, 300);
});

t.test('session commands waiting on an agent that never answers', async (t) => {
  const { server, connections } = await silentServer(join(runtime, 'hung.sock'));
  t.teardown(() => void server.close());
  const blk = await BlkDriver.open((await openTransport('sim:blk')).transport);
  await blk.stop();
  writeSnapshotFile(join(work, 'good.json'), blk.snapshot());
  await blk.close();
  const S = ['--session', 'hung'];
  const commands: [string, string[]][] = [
    ['stop', ['stop', ...S]], ['vq-state', ['vq-state', ...S]], ['snapshot', ['snapshot', ...S, '--out', 'never.json']],
    ['reinit', ['reinit', ...S, '--from', 'good.json']], ['resume', ['resume', ...S]], ['status --session', ['status', ...S]],
    ['detach', ['detach', ...S, '--verify']],
  ];
  for (const [label, args] of commands) {
    await measure(t, label, args, async (b) => {
      const before = connections.length;
      return (await until(() => connections.length > before, 10_000)) && b.running;
    }, 300);
  }
  t.notOk(existsSync(join(work, 'never.json')), 'no snapshot file appeared');
});

t.test('attach whose agent never gets ready (a silent vhost-user back-end): the agent is ended too, its lock removed', async (t) => {
  const sock = join(work, 'silent.sock');
  const { server, connections } = await silentServer(sock);
  t.teardown(() => void server.close());
  let n = 0;
  await measure(t, 'attach (agent not ready)', ['attach', `vhost-user:${sock}`, '--name', 'silent'], async (b) => {
    const before = connections.length;
    return (await until(() => connections.length > before, 10_000)) && b.running;
  }, 300);
  for (const c of connections) {
    n++;
    t.ok(await until(() => c.destroyed || c.readableEnded, 3000), `agent ${n} is gone (its connection closed)`);
  }
  t.same(readdirSync(runtime).filter((f) => f.endsWith('.lock') || f === 'silent.sock'), [], 'no lock and no socket left');
});

// A silent back-end: the front-end waits for the handshake's answers asynchronously, so the
// signal is handled at once and the abandoned open does not hold the teardown.
t.test('info on a silent vhost-user back-end', async (t) => {
  const sock = join(work, 'silent-info.sock');
  const { server, connections } = await silentServer(sock);
  t.teardown(() => void server.close());
  await measure(t, 'info (silent vhost-user back-end)', ['info', `vhost-user:${sock}`], async (b) => {
    const before = connections.length;
    return (await until(() => connections.length > before, 10_000)) && b.running;
  }, 300, true, ['SIGINT', 'SIGTERM']);
});

t.test('a real agent stuck in a stop (a quiesce whose requests never complete): stop and a snapshot queued behind it end at the signal; the session lives on', async (t) => {
  const attach = uvSync(env, work, ['attach', 'sim:blk?completion=manual&state=none', '--name', 'stuck', '--traffic', '4']);
  t.equal(attach.status, 0, attach.stderr);
  t.teardown(() => void uvSync(env, work, ['detach', '--session', 'stuck']));
  const log = (): string => readFileSync(join(runtime, 'stuck.log'), 'utf8');
  const stop = new Background(env, work, ['stop', '--session', 'stuck', '--timeout', '6000']);
  t.ok(await until(() => log().includes('stop: received'), 20_000), 'the agent is in the stop');
  const snapshot = new Background(env, work, ['snapshot', '--session', 'stuck', '--out', 'queued.json']);
  t.ok(await until(() => log().includes('snapshot: received'), 20_000), 'the snapshot waits behind it');
  await sleep(200);
  for (const [label, b] of [['snapshot (queued behind a stuck stop)', snapshot], ['stop (quiesce never drains)', stop]] as const) {
    const out = await b.signal('SIGINT');
    t.ok(out.sent, `${label}: SIGINT reached it while it waited`);
    t.equal(out.status, 130, `${label}: 130`);
    t.ok(out.ms <= BOUND_MS, `${label}: ended ${Math.round(out.ms)} ms after SIGINT`);
    (timings[label] ??= []).push(out.ms);
  }
  // The agent finishes (or fails) the stop on its own bound, skips the abandoned snapshot, and answers again.
  t.ok(await until(() => log().includes('snapshot: skipped'), 15_000), 'the abandoned snapshot was skipped, not run');
  const st = uvSync(env, work, ['status', '--session', 'stuck', '--json']);
  t.equal(st.status, 0, 'the session answers');
  t.match(st.json(), { phase: 'live' }, 'live: the quiesce timed out (E_STOP_TIMEOUT) and the driver went on');
  t.match(log(), /stop: E_STOP_TIMEOUT/, 'the stop ended by its own bound');
  t.notOk(existsSync(join(work, 'queued.json')), 'no snapshot was written for the interrupted command');
});

t.test('examples/rehearse.sh: Ctrl-C (SIGINT to its process group, as a terminal sends it) ends it with 130 and detaches its session', async (t) => {
  for (const round of [1, 2, 3]) {
    const rt = tempDir('uvirtio-signals-sh-');
    const child = spawn('sh', [join('examples', 'rehearse.sh'), 'sim:blk?mode=hold&latency=1', 'sim:blk?latency=1', '1000'], {
      detached: true, env: { ...process.env, UVIRTIO_RUNTIME_DIR: rt }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await until(() => out.includes('attached') || child.exitCode !== null || child.signalCode !== null, 20_000);
    if (!t.ok(out.includes('attached') && child.exitCode === null, `round ${round}: the script attached its session`, { stdout: out, stderr: err, exit: child.exitCode ?? child.signalCode })) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the script is gone already
      }
      break;
    }
    const at = randomInt(rng, 0, 1500);
    await sleep(at);
    const sent = performance.now();
    process.kill(-child.pid!, 'SIGINT');
    t.equal(await exited, 130, `round ${round}: SIGINT at ${at} ms after attach → 130`);
    (timings['examples/rehearse.sh, detach included (no bound asserted)'] ??= []).push(performance.now() - sent);
    t.same(readdirSync(rt).filter((f) => f.endsWith('.sock') || f.endsWith('.lock')), [], 'its session was detached: no socket, no lock');
  }
});

t.test('the hard deadline and the second signal (signals.ts on its own)', async (t) => {
  const signalsJs = pathToFileURL(join(process.cwd(), 'dist', 'cli', 'signals.js')).href;
  // A process whose teardown never ends: only the deadline (first signal) or a second signal ends it.
  const script = `
    import { installSignalHandlers, onInterrupt } from ${JSON.stringify(signalsJs)};
    installSignalHandlers();
    onInterrupt(() => new Promise(() => undefined));
    setInterval(() => undefined, 1000);
    console.log('ready');`;
  const file = join(work, 'hang.mjs');
  writeFileSync(file, script);
  for (const second of [undefined, 'SIGTERM'] as const) {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const at = performance.now();
    child.kill('SIGINT');
    if (second) {
      await sleep(100);
      child.kill(second);
    }
    t.equal(await exited, 130, `${second ? `SIGINT then ${second}` : 'SIGINT alone'}: status 130 (the first signal's)`);
    const ms = performance.now() - at;
    t.ok(ms <= BOUND_MS, `ended ${Math.round(ms)} ms after SIGINT`);
    t.match(err, second ? /second SIGTERM: exiting at once/ : /the teardown did not end within 1500 ms, exiting anyway/);
    (timings[second ? 'hung teardown, second signal' : 'hung teardown, deadline'] ??= []).push(ms);
  }
});

t.test('timings', async (t) => {
  for (const [label, ms] of Object.entries(timings)) {
    const s = summary(ms);
    t.comment(`${label}: signal → exit ms  min ${s.min}  median ${s.median}  max ${s.max}  (n=${s.n})`);
  }
  t.pass('printed');
});
